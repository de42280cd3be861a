"""The ``perilune`` command line: serve, sim, keys, accounts, check-config."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console

from perilune.cli_ledger import ledger_app
from perilune.router.cli import router_app
from perilune.settings import Settings, SettingsError, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="perilune: a self-hosted LLM API gateway.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
accounts_app = typer.Typer(no_args_is_help=True, help="Accounts: create, list, top up, adjust, balance.")
app.add_typer(keys_app, name="keys")
app.add_typer(accounts_app, name="accounts")
limits_app = typer.Typer(no_args_is_help=True, help="Rate limits of keys and accounts.")
app.add_typer(limits_app, name="limits")
app.add_typer(ledger_app, name="ledger")
app.add_typer(router_app, name="router")
err = Console(stderr=True, soft_wrap=True)

HomeOpt = Annotated[str | None, typer.Option("--home", envvar="PERILUNE_HOME", help="Data directory.")]
ConfigOpt = Annotated[str | None, typer.Option("--config", envvar="PERILUNE_CONFIG", help="TOML config file.")]


def _settings(config: str | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except SettingsError as e:
        err.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    from perilune.logs import configure

    configure(level)  # one JSON object per line, with the request id where there is one


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_http(url: str, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")


def _start_simulator(port: int) -> tuple[subprocess.Popen[bytes], str]:
    if not _port_free("127.0.0.1", port):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "sim", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/health", proc=proc)
    return proc, url


def _first_run(settings: Settings, host: str, port: int) -> None:
    from perilune.accounting.pricing import to_pico
    from perilune.store.db import Database
    from perilune.store.keys import KeyStore
    from perilune.store.ledger import LedgerStore

    db = Database(settings.db_url)
    try:
        db.migrate()
        store = KeyStore(db)
        if store.count_keys():
            return
        account = store.default_account()
        secret, _ = store.create_key(account, name="first key")
        credit = settings.first_run_credit_usd
        if credit > 0:
            LedgerStore(db).add_entry(account, "topup", to_pico(credit), "first-run", "starting balance")
    finally:
        db.dispose()
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    print(f"""
perilune created your first API key (it is shown once; only its hash is stored):

    {secret}

Its account ({account}) starts with a prepaid balance of ${credit} (see GET /v1/balance;
top up with `perilune accounts topup {account} AMOUNT_USD`).

Try it:

    curl {base}/v1/chat/completions \\
      -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
      -d '{{"model": "sim-gpt", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

    from openai import OpenAI
    client = OpenAI(base_url="{base}/v1", api_key="{secret}")
    print(client.chat.completions.create(model="sim-gpt",
          messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)
""", flush=True)


def _worker(settings: Settings, host: str, port: int, sim_url: str | None) -> None:
    from perilune.app import run

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers with SIGTERM
    _logging(settings.log_level)  # a spawned worker starts with no logging configured
    run(settings, host=host, port=port, sim_url=sim_url, reuse_port=True, migrate=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8787).")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes sharing the port.")] = None,
) -> None:
    """Run the gateway (and the provider simulator when no provider is configured)."""
    from perilune.providers.registry import build_providers, wants_simulator

    settings = _settings(config, home=home, host=host, port=port, workers=workers)
    _logging(settings.log_level)
    settings.home_path.mkdir(parents=True, exist_ok=True)
    try:
        providers = build_providers(settings)
        if settings.jwt is not None:  # the secret's env var and the JWKS file, checked before serving
            from perilune.gateway.jwt import build_verifier

            build_verifier(settings.jwt, os.environ)
    except SettingsError as e:
        err.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None
    sim: subprocess.Popen[bytes] | None = None
    sim_url = None
    if wants_simulator(settings, providers):
        sim, sim_url = _start_simulator(settings.simulator_port)
        err.print(f"no provider key configured: serving the built-in simulator ({sim_url}) as provider 'sim'")
    try:
        _first_run(settings, settings.host, settings.port)
        err.print(f"perilune listening on http://{settings.host}:{settings.port} "
                  f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, database "
                  f"{'sqlite' if settings.db_url.startswith('sqlite') else 'postgresql'})")
        if settings.workers == 1:
            from perilune.app import run

            run(settings, host=settings.host, port=settings.port, sim_url=sim_url, migrate=False)
        else:
            _run_workers(settings, sim_url)
    finally:
        if sim is not None:
            sim.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(5)


def _run_workers(settings: Settings, sim_url: str | None) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(settings, settings.host, settings.port, sim_url), daemon=False)
             for _ in range(settings.workers)]
    for p in procs:
        p.start()

    def stop(*_: Any) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop()
        for p in procs:
            p.join(15)


@app.command()
def sim(
    port: Annotated[int, typer.Option(help="Port.")] = 8788,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Delay before every response.")] = 0.0,
    ttft_ms: Annotated[float, typer.Option(help="Stream: delay before the first chunk.")] = 0.0,
    tokens_per_s: Annotated[float, typer.Option(help="Stream pacing (0 = unlimited).")] = 0.0,
    chunks: Annotated[int | None, typer.Option(help="Content chunks per stream.")] = None,
    chunk_delay_ms: Annotated[float, typer.Option(help="Stream: fixed delay between chunks.")] = 0.0,
    output_tokens: Annotated[int, typer.Option(help="Completion length when max_tokens is absent.")] = 16,
    fault: Annotated[str | None, typer.Option(help="Inject a fault into every request (400, 429, 500, 503, 529, "
                                              "hang, drop, malformed, error-event, timeout-first-byte).")] = None,
    api_key: Annotated[str | None, typer.Option(help="Require this key, as each provider does.")] = None,
    fault_rate: Annotated[float, typer.Option(help="Share of requests that get --fault (0..1).")] = 1.0,
    ttft_jitter_ms: Annotated[float, typer.Option(help="TTFT uniform in [ttft, ttft + jitter].")] = 0.0,
    slow_tail_rate: Annotated[float, typer.Option(help="Share of requests with a slow TTFT (0..1).")] = 0.0,
    slow_tail_ms: Annotated[float, typer.Option(help="Extra TTFT of the slow tail.")] = 0.0,
    context_tokens: Annotated[int, typer.Option(help="Refuse prompts over this many tokens (0 = none).")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault / slow-tail draws.")] = None,
) -> None:
    """Run the provider simulator (OpenAI, Anthropic and Gemini wire formats)."""
    from perilune.sim import SimConfig
    from perilune.sim.app import run as run_sim
    from perilune.sim.common import FAULTS

    if fault is not None and fault not in FAULTS:
        err.print(f"[red]error:[/red] --fault must be one of {', '.join(sorted(FAULTS))}, got {fault!r}")
        raise typer.Exit(2)
    for name, rate in (("--fault-rate", fault_rate), ("--slow-tail-rate", slow_tail_rate)):
        if not 0 <= rate <= 1:
            err.print(f"[red]error:[/red] {name} must be between 0 and 1, got {rate}")
            raise typer.Exit(2)
    run_sim(host, port, SimConfig(latency_ms=latency_ms, ttft_ms=ttft_ms, tokens_per_s=tokens_per_s,
                                  chunks=chunks, chunk_delay_ms=chunk_delay_ms, output_tokens=output_tokens,
                                  fault=fault, api_key=api_key, fault_rate=fault_rate,
                                  ttft_jitter_ms=ttft_jitter_ms, slow_tail_rate=slow_tail_rate,
                                  slow_tail_ms=slow_tail_ms, context_tokens=context_tokens, seed=seed))


@app.command("check-config")
def check_config(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Validate the configuration (file + PERILUNE_* environment) without starting."""
    from perilune.accounting.catalog import build_catalog
    from perilune.providers.registry import build_providers

    settings = _settings(config, home=home)
    try:
        catalog = build_catalog(settings)
        providers = build_providers(settings)
    except SettingsError as e:
        err.print(f"[red]configuration error:[/red] {e}")
        raise typer.Exit(2) from None
    ready = [p.name for p in providers.values() if p.ready]
    missing = [f"{p.name} ({p.api_key_env} not set)" for p in providers.values() if not p.ready]
    print(f"configuration OK: {len(catalog)} catalog models, providers ready: {', '.join(ready) or 'none'}"
          + (f"; missing keys: {', '.join(missing)}" if missing else ""))


def _store(config: str | None, home: str | None) -> Any:
    from perilune.store.db import Database
    from perilune.store.keys import KeyStore

    settings = _settings(config, home=home)
    db = Database(settings.db_url)
    db.migrate()
    return KeyStore(db)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")] = "",
    account: Annotated[str | None, typer.Option(help="Account id (default: the first account).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key (admin API access).")] = False,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a key. The key is printed alone on the last line of stdout."""
    store = _store(config, home)
    expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    try:
        secret, rec = store.create_key(account or store.default_account(), name=name,
                                       role="admin" if admin else "user", expires_at=expires)
    except LookupError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    err.print(f"created {rec.role} key {rec.id} for account {rec.account_id}")
    print(secret)


@keys_app.command("list")
def keys_list(account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
              home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List keys (never the secrets)."""
    from rich.table import Table

    t = Table("id", "account", "name", "prefix", "role", "created", "expires", "revoked")

    def fmt(v: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(v)) if v else ""

    for r in _store(config, home).list_keys(account):
        t.add_row(r.id, r.account_id, r.name, r.prefix, r.role, fmt(r.created_at), fmt(r.expires_at),
                  fmt(r.revoked_at))
    Console().print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: str, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Revoke a key (every instance stops accepting it within about a second)."""
    rec = _store(config, home).revoke_key(key_id)
    if rec is None:
        err.print(f"[red]error:[/red] no key {key_id!r}")
        raise typer.Exit(1)
    print(f"revoked {rec.id}")


@accounts_app.command("create")
def accounts_create(name: str, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Create an account; prints its id on the last line."""
    print(_store(config, home).create_account(name))


@accounts_app.command("list")
def accounts_list(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List accounts: id and name, tab-separated."""
    for a in _store(config, home).list_accounts():
        print(f"{a['id']}\t{a['name']}")


def _ledger_cmd(kind: str, account: str, amount_usd: str, reason: str, home: str | None,
                config: str | None) -> None:
    from decimal import Decimal, InvalidOperation

    from perilune.accounting.pricing import PICO, to_pico, usd_str
    from perilune.store.ledger import LedgerStore

    try:
        amount = Decimal(amount_usd)
    except InvalidOperation:
        err.print(f"[red]error:[/red] amount must be a decimal number of USD, got {amount_usd!r}")
        raise typer.Exit(2) from None
    if not amount.is_finite() or amount != amount.quantize(PICO) or (kind == "topup" and amount <= 0):
        err.print(f"[red]error:[/red] invalid amount {amount_usd!r} for a {kind}")
        raise typer.Exit(2)
    store = _store(config, home)
    try:
        entry = LedgerStore(store.db).add_entry(account, kind, to_pico(amount), "cli", reason)
    except LookupError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    balance, _ = LedgerStore(store.db).balance_snapshot(account)
    print(f"{entry['id']}\t{kind}\t{usd_str(entry['amount_pusd'])}\tbalance {usd_str(balance)}")


@accounts_app.command("topup")
def accounts_topup(account: str, amount_usd: str,
                   reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
                   home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Add money to an account's prepaid balance (running gateways apply it within a second)."""
    _ledger_cmd("topup", account, amount_usd, reason, home, config)


@accounts_app.command("adjust")
def accounts_adjust(account: str, amount_usd: str,
                    reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
                    home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Correct a balance by a signed amount (a new ledger entry; nothing is ever edited)."""
    _ledger_cmd("adjustment", account, amount_usd, reason, home, config)


@accounts_app.command("balance")
def accounts_balance(account: str, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """The balance according to the database (top-ups minus recorded charges)."""
    from perilune.accounting.pricing import usd_str
    from perilune.store.ledger import LedgerStore

    balance, _ = LedgerStore(_store(config, home).db).balance_snapshot(account)
    print(usd_str(balance))


@limits_app.command("set")
def limits_set(
    key: Annotated[str | None, typer.Option(help="Key id.")] = None,
    account: Annotated[str | None, typer.Option(help="Account id.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (omit: unlimited).")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (omit: unlimited).")] = None,
    home: HomeOpt = None, config: ConfigOpt = None,
) -> None:
    """Set the rate limits of a key or an account (running gateways pick them up within a second)."""
    from perilune.store.ledger import LedgerStore

    if (key is None) == (account is None):
        err.print("[red]error:[/red] give exactly one of --key and --account")
        raise typer.Exit(2)
    for name, v in (("rpm", rpm), ("tpm", tpm)):
        if v is not None and v < 1:
            err.print(f"[red]error:[/red] --{name} must be >= 1, got {v}")
            raise typer.Exit(2)
    ledger = LedgerStore(_store(config, home).db)
    ok = ledger.set_key_limits(key, rpm, tpm) if key else ledger.set_account_limits(account or "", rpm, tpm)
    if not ok:
        err.print(f"[red]error:[/red] no such {'key' if key else 'account'}: {key or account}")
        raise typer.Exit(1)
    print(f"limits of {key or account}: rpm={rpm or 'unlimited'} tpm={tpm or 'unlimited'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()



