"""The ``perilune`` command line: serve, sim, keys, accounts, limits, check-config.

For scripts: every listing takes ``--json``; ids are printed whole; errors go to stderr as one line and
exit non-zero (1: the thing asked for is wrong or missing, 2: the command line or configuration is).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from perilune import __version__
from perilune.cli_identities import identities_app
from perilune.cli_ledger import ledger_app
from perilune.router.cli import router_app
from perilune.settings import Settings, SettingsError, load_settings

# rich_markup_mode=None: click's plain help (flags without a "<bool>" type, one line per option);
# locals are never printed with a traceback (they can hold keys).
_TYPER: dict[str, Any] = {"rich_markup_mode": None, "pretty_exceptions_show_locals": False,
                          "no_args_is_help": True}
app = typer.Typer(add_completion=False, help="perilune: a self-hosted LLM API gateway.", **_TYPER)
keys_app = typer.Typer(help="Create, list and revoke API keys.", **_TYPER)
accounts_app = typer.Typer(help="Accounts: create, list, top up, adjust, balance.", **_TYPER)
app.add_typer(keys_app, name="keys")
app.add_typer(accounts_app, name="accounts")
limits_app = typer.Typer(help="Rate limits of keys and accounts.", **_TYPER)
app.add_typer(limits_app, name="limits")
app.add_typer(ledger_app, name="ledger")
app.add_typer(router_app, name="router")
err = Console(stderr=True, soft_wrap=True, highlight=False)

HomeOpt = Annotated[str | None, typer.Option("--home", envvar="PERILUNE_HOME", metavar="DIR",
                                             help="Data directory.")]
ConfigOpt = Annotated[str | None, typer.Option("--config", envvar="PERILUNE_CONFIG", metavar="FILE",
                                               help="TOML config file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one array or object) instead of a table.")]


def _version(value: bool) -> None:
    if value:
        print(f"perilune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                                callback=_version)] = False) -> None:
    """perilune: a self-hosted LLM API gateway."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line to stderr; raise the returned Exit."""
    err.print(f"[red]error:[/red] {escape(message)}", markup=True)
    return typer.Exit(code)


@contextlib.contextmanager
def progress(what: str, stream: IO[str] | None = None, after_s: float = 1.0) -> Iterator[None]:
    """Say ``what…`` on stderr if it is still running after ``after_s`` (then how long it took);
    say nothing for the quick case."""
    out = stream or sys.stderr
    shown = threading.Event()
    started = time.monotonic()

    def announce() -> None:
        shown.set()
        print(f"{what}…", file=out, flush=True)

    timer = threading.Timer(after_s, announce)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if shown.is_set():
            print(f"{what}: done in {time.monotonic() - started:.1f} s", file=out, flush=True)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A listing: JSON (every field, full values) or an aligned text table (never truncated)."""
    if as_json:
        print(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2).decode())
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _when(v: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v)) if v else None


def _settings(config: str | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except SettingsError as e:
        err.print(f"[red]configuration error:[/red] {escape(str(e))}", markup=True)
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


SIM_LINE = "perilune sim listening on "


def _start_simulator(settings: Settings) -> tuple[subprocess.Popen[str], str]:
    """The demo simulator on ``simulator_port`` (0, the default: any free port), as a child process
    whose first stdout line says where it listens."""
    from perilune.preflight import StartupError

    port = settings.simulator_port
    if port and not _port_free("127.0.0.1", port):
        err.print(f"simulator_port {port} is in use: the simulator takes a free port instead")
        port = 0
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "sim", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()) if proc.stdout else None,
                              daemon=True)
    reader.start()
    reader.join(30)
    line = got[0].strip() if got else ""
    if not line.startswith(SIM_LINE):
        proc.kill()
        raise StartupError("the built-in provider simulator did not start"
                           + (f" (it exited with code {proc.wait(5)})" if not reader.is_alive() else ""))
    return proc, line[len(SIM_LINE):].split()[0]


def _first_run(settings: Settings, db: Any, base: str) -> None:
    """On a database with no key yet: create one, credit its account, print how to use it."""
    from perilune.accounting.pricing import to_pico, usd_str
    from perilune.store.keys import KeyStore
    from perilune.store.ledger import LedgerStore

    store = KeyStore(db)
    if store.count_keys():
        return
    account = store.default_account()
    secret, _ = store.create_key(account, name="first key")
    credit = settings.first_run_credit_usd
    if credit > 0:
        LedgerStore(db).add_entry(account, "topup", to_pico(credit), "first-run", "starting balance")
    print(f"""
perilune created your first API key (it is shown once; only its hash is stored):

    {secret}

Its account ({account}) starts with a prepaid balance of ${usd_str(to_pico(credit))} (see GET /v1/balance;
top up with `perilune accounts topup {account} AMOUNT_USD`).

Try it:

    curl {base}/v1/chat/completions \\
      -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
      -d '{{"model": "sim-gpt", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

    from openai import OpenAI
    client = OpenAI(base_url="{base}/v1", api_key="{secret}")
    print(client.chat.completions.create(model="sim-gpt",
          messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)

Sign in to the dashboard at {base}/dashboard with this key.
""", flush=True)


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
        f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _worker(settings: Settings, sock: socket.socket, sim_url: str | None, metrics_dir: str | None) -> None:
    from perilune.app import leave_now, run

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers with SIGTERM
    _logging(settings.log_level)  # a spawned worker starts with no logging configured
    if run(settings, host=settings.host, port=settings.port, sim_url=sim_url, migrate=False, sock=sock,
           metrics_dir=metrics_dir):
        leave_now()


def _metrics_dir(settings: Settings) -> str:
    """Where the workers of this server (home + port) share their metrics; emptied at every start."""
    import shutil

    path = settings.home_path / "run" / f"metrics-{settings.port}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@app.command(short_help="Run the gateway.")
def serve(
    host: Annotated[str | None, typer.Option(metavar="ADDRESS", help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(metavar="N", help="Port (default 8787).")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
    workers: Annotated[int | None, typer.Option(metavar="N", help="Worker processes sharing the port.")] = None,
) -> None:
    """Run the gateway (and the provider simulator when no provider is configured)."""
    from perilune.preflight import StartupError, bind, check_database, check_redis
    from perilune.providers.registry import build_providers, wants_simulator
    from perilune.store.db import Database

    settings = _settings(config, home=home, host=host, port=port, workers=workers)
    try:
        providers = build_providers(settings)
        if settings.jwt is not None:  # the secret's env var and the JWKS file, checked before serving
            from perilune.gateway.jwt import build_verifier

            build_verifier(settings.jwt, os.environ)
    except SettingsError as e:
        err.print(f"[red]configuration error:[/red] {escape(str(e))}", markup=True)
        raise typer.Exit(2) from None
    sim: subprocess.Popen[str] | None = None
    sim_url = None
    base = _base_url(settings.host, settings.port)
    try:
        try:
            settings.home_path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StartupError(f"cannot create the data directory {settings.home_path}: {e.strerror}") from None
        sock = bind(settings.host, settings.port)  # first: a busy port stops us before anything else
        if settings.redis_url:
            check_redis(settings.redis_url)
        db = Database(settings.db_url)
        try:
            with progress("migrating the database"):
                check_database(db)
            if wants_simulator(settings, providers):
                with progress("starting the provider simulator"):
                    sim, sim_url = _start_simulator(settings)
                err.print(f"no provider key configured: serving the built-in simulator ({sim_url}) as "
                          "provider 'sim'")
            _first_run(settings, db, base)
        finally:
            db.dispose()
    except StartupError as e:
        if sim is not None:
            sim.kill()
        raise fail(str(e)) from None
    _logging(settings.log_level)  # after the checks: a failed start-up is its one line, nothing else
    try:
        err.print(f"perilune {__version__} listening on {base} ({settings.workers} "
                  f"worker{'s' if settings.workers > 1 else ''}, database "
                  f"{'sqlite' if settings.db_url.startswith('sqlite') else 'postgresql'}); "
                  f"dashboard: {base}/dashboard")
        blocked = False
        if settings.workers == 1:
            from perilune.app import run

            blocked = run(settings, host=settings.host, port=settings.port, sim_url=sim_url, migrate=False,
                          sock=sock)
        else:
            _run_workers(settings, sock, sim_url, _metrics_dir(settings))
    finally:
        sock.close()
        if sim is not None:
            sim.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(5)
    if blocked:  # the simulator is stopped: leave without joining a thread blocked on the database
        from perilune.app import leave_now

        leave_now()


def _run_workers(settings: Settings, sock: socket.socket, sim_url: str | None, metrics_dir: str) -> None:
    """Worker processes accepting on the one socket the parent bound (so a port in use is found before
    any of them starts, and no other server can share it through SO_REUSEPORT)."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(settings, sock, sim_url, metrics_dir), daemon=False)
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


@app.command(short_help="Run the provider simulator.")
def sim(
    port: Annotated[int, typer.Option(metavar="N", help="Port (0: any free port; the start-up line says "
                                      "which).")] = 8788,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(metavar="MS", help="Delay before every response.")] = 0.0,
    ttft_ms: Annotated[float, typer.Option(metavar="MS", help="Stream: delay before the first chunk.")] = 0.0,
    tokens_per_s: Annotated[float, typer.Option(metavar="N", help="Stream pacing (0 = unlimited).")] = 0.0,
    chunks: Annotated[int | None, typer.Option(metavar="N", help="Content chunks per stream.")] = None,
    chunk_delay_ms: Annotated[float, typer.Option(metavar="MS", help="Stream: fixed delay between chunks.")] = 0.0,
    output_tokens: Annotated[int, typer.Option(metavar="N", help="Completion length when max_tokens is "
                                               "absent.")] = 16,
    fault: Annotated[str | None, typer.Option(metavar="FAULT", help="Inject a fault into every request (400, "
                                              "429, 500, 503, 529, hang, drop, malformed, error-event, "
                                              "timeout-first-byte).")] = None,
    api_key: Annotated[str | None, typer.Option(metavar="KEY", help="Require this key, as each provider "
                                                "does.")] = None,
    fault_rate: Annotated[float, typer.Option(metavar="SHARE", help="Share of requests that get --fault "
                                              "(0..1).")] = 1.0,
    ttft_jitter_ms: Annotated[float, typer.Option(metavar="MS", help="TTFT uniform in [ttft, ttft + jitter].")
                              ] = 0.0,
    slow_tail_rate: Annotated[float, typer.Option(metavar="SHARE", help="Share of requests with a slow TTFT "
                                                  "(0..1).")] = 0.0,
    slow_tail_ms: Annotated[float, typer.Option(metavar="MS", help="Extra TTFT of the slow tail.")] = 0.0,
    context_tokens: Annotated[int, typer.Option(metavar="N", help="Refuse prompts over this many tokens "
                                                "(0 = none).")] = 0,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Seed of the fault / slow-tail draws.")] = None,
) -> None:
    """Run the provider simulator (OpenAI, Anthropic and Gemini wire formats)."""
    from perilune.preflight import StartupError, bind
    from perilune.sim import SimConfig
    from perilune.sim.app import make_server
    from perilune.sim.common import FAULTS

    if fault is not None and fault not in FAULTS:
        raise fail(f"--fault must be one of {', '.join(sorted(FAULTS))}, got {fault!r}", 2)
    for name, rate in (("--fault-rate", fault_rate), ("--slow-tail-rate", slow_tail_rate)):
        if not 0 <= rate <= 1:
            raise fail(f"{name} must be between 0 and 1, got {rate}", 2)
    try:
        sock = bind(host, port, what="the simulator")
    except StartupError as e:
        raise fail(str(e)) from None
    bound = sock.getsockname()[1]
    server = make_server(host, bound, SimConfig(
        latency_ms=latency_ms, ttft_ms=ttft_ms, tokens_per_s=tokens_per_s, chunks=chunks,
        chunk_delay_ms=chunk_delay_ms, output_tokens=output_tokens, fault=fault, api_key=api_key,
        fault_rate=fault_rate, ttft_jitter_ms=ttft_jitter_ms, slow_tail_rate=slow_tail_rate,
        slow_tail_ms=slow_tail_ms, context_tokens=context_tokens, seed=seed))
    print(f"{SIM_LINE}{_base_url(host, bound)} (OpenAI, Anthropic and Gemini wire formats"
          + (f"; fault {fault}" if fault else "") + ")", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@app.command("check-config", short_help="Validate the configuration.")
def check_config(config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Validate the configuration (file + PERILUNE_* environment) without starting."""
    from perilune.accounting.catalog import build_catalog
    from perilune.providers.registry import build_providers

    settings = _settings(config, home=home)
    try:
        catalog = build_catalog(settings)
        providers = build_providers(settings)
    except SettingsError as e:
        err.print(f"[red]configuration error:[/red] {escape(str(e))}", markup=True)
        raise typer.Exit(2) from None
    ready = [p.name for p in providers.values() if p.ready]
    missing = [f"{p.name} ({p.api_key_env} not set)" for p in providers.values() if not p.ready]
    print(f"configuration OK: {len(catalog)} catalog models, providers ready: {', '.join(ready) or 'none'}"
          + (f"; missing keys: {', '.join(missing)}" if missing else ""))


def _store(config: str | None, home: str | None) -> Any:
    from perilune.preflight import StartupError, check_database
    from perilune.store.db import Database
    from perilune.store.keys import KeyStore

    settings = _settings(config, home=home)
    db = Database(settings.db_url)
    try:
        with progress("migrating the database"):
            check_database(db)
    except StartupError as e:
        raise fail(str(e)) from None
    return KeyStore(db)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(metavar="NAME", help="A name to recognise the key by.")] = "",
    account: Annotated[str | None, typer.Option(metavar="ACCOUNT_ID",
                                                help="Account id (default: the first account).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key (admin API access).")] = False,
    expires_in_days: Annotated[float | None, typer.Option(metavar="DAYS", help="Expire after this many days.")
                               ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a key. The key is printed alone on the last line of stdout."""
    if expires_in_days is not None and not 0 < expires_in_days < 36500:
        raise fail(f"--expires-in-days must be more than 0 (and under a century), got {expires_in_days:g}", 2)
    store = _store(config, home)
    expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    try:
        secret, rec = store.create_key(account or store.default_account(), name=name,
                                       role="admin" if admin else "user", expires_at=expires)
    except LookupError as e:
        raise fail(str(e)) from None
    err.print(f"created {rec.role} key {rec.id} for account {rec.account_id}")
    print(secret)


def _key_row(r: Any) -> dict[str, Any]:
    state = "revoked" if r.revoked_at else "expired" if r.expires_at and r.expires_at <= time.time() else "active"
    return {**r.public(), "state": state}


@keys_app.command("list")
def keys_list(account: Annotated[str | None, typer.Option(metavar="ACCOUNT_ID", help="Only this account.")] = None,
              as_json: JsonOpt = False, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List keys (never the secrets), with their full ids."""
    rows = [_key_row(r) for r in _store(config, home).list_keys(account)]
    if not as_json:
        rows = [{**r, "created": _when(r["created_at"]), "expires": _when(r["expires_at"]),
                 "revoked": _when(r["revoked_at"])} for r in rows]
    emit(rows, ("id", "account_id", "name", "prefix", "role", "state", "created", "expires", "revoked"), as_json)


@keys_app.command("revoke", short_help="Revoke a key (everywhere within a second).")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID")], as_json: JsonOpt = False,
                home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Revoke a key (every instance stops accepting it within about a second)."""
    store = _store(config, home)
    rec = store.get_key(key_id)
    if rec is None:
        raise fail(f"no key {key_id!r}")
    if rec.revoked_at is not None:
        raise fail(f"key {key_id} was already revoked at {_when(rec.revoked_at)}")
    rec = store.revoke_key(key_id)
    if as_json:
        print(orjson.dumps(_key_row(rec)).decode())
    else:
        print(f"revoked {rec.id}")


@accounts_app.command("create")
def accounts_create(name: Annotated[str, typer.Argument(metavar="NAME")], home: HomeOpt = None,
                    config: ConfigOpt = None) -> None:
    """Create an account; prints its id on the last line."""
    if not name.strip() or "\x00" in name or len(name) > 200:
        raise fail("an account name is 1 to 200 characters, without NUL", 2)
    print(_store(config, home).create_account(name))


@accounts_app.command("list", short_help="List accounts.")
def accounts_list(as_json: JsonOpt = False, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List accounts: id and name, tab-separated (or every field with --json)."""
    rows = _store(config, home).list_accounts()
    if as_json:
        emit(rows, (), True)
        return
    for a in rows:
        print(f"{a['id']}\t{a['name']}")


def _ledger_cmd(kind: str, account: str, amount_usd: str, reason: str, home: str | None,
                config: str | None, as_json: bool) -> None:
    from decimal import Decimal, InvalidOperation

    from perilune.accounting.pricing import PICO, to_pico, usd_str
    from perilune.store.ledger import LedgerStore

    try:
        amount = Decimal(amount_usd.strip().lstrip("$"))
    except InvalidOperation:
        raise fail(f"amount must be a decimal number of USD (e.g. 25.00 or -1.50), got {amount_usd!r}", 2) from None
    if not amount.is_finite() or abs(amount) > 1_000_000:
        raise fail(f"amount must be a finite number of at most 1000000 USD, got {amount_usd!r}", 2)
    if amount != amount.quantize(PICO):
        raise fail(f"amount has more than 12 decimal places: {amount_usd!r}", 2)
    if kind == "topup" and amount <= 0:
        raise fail(f"a top-up must be a positive amount, got {amount_usd!r} (use `accounts adjust` to take "
                   "money away)", 2)
    if amount == 0:
        raise fail("an adjustment of zero changes nothing", 2)
    store = _store(config, home)
    try:
        entry = LedgerStore(store.db).add_entry(account, kind, to_pico(amount), "cli", reason)
    except LookupError:
        raise fail(f"no account {account!r}") from None
    balance, _ = LedgerStore(store.db).balance_snapshot(account)
    if as_json:
        print(orjson.dumps({**entry, "amount_usd": usd_str(entry["amount_pusd"]),
                            "balance_usd": usd_str(balance)}).decode())
        return
    print(f"{entry['id']}\t{kind}\t{usd_str(entry['amount_pusd'])}\tbalance {usd_str(balance)}")


# A negative amount (`accounts adjust ACCT -1.50`) is an argument, not an unknown option.
_SIGNED = {"ignore_unknown_options": True}
AccountArg = Annotated[str, typer.Argument(metavar="ACCOUNT_ID")]
AmountArg = Annotated[str, typer.Argument(metavar="AMOUNT_USD", help="A decimal amount, e.g. 25.00 or -1.50.")]
ReasonOpt = Annotated[str, typer.Option(metavar="TEXT", help="Why (kept in the ledger).")]


@accounts_app.command("topup", context_settings=_SIGNED, short_help="Add money to a balance.")
def accounts_topup(account: AccountArg, amount_usd: AmountArg, reason: ReasonOpt = "", as_json: JsonOpt = False,
                   home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Add money to an account's prepaid balance (running gateways apply it within a second)."""
    _ledger_cmd("topup", account, amount_usd, reason, home, config, as_json)


@accounts_app.command("adjust", context_settings=_SIGNED, short_help="Correct a balance by a signed amount.")
def accounts_adjust(account: AccountArg, amount_usd: AmountArg, reason: ReasonOpt = "", as_json: JsonOpt = False,
                    home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Correct a balance by a signed amount (a new ledger entry; nothing is ever edited)."""
    _ledger_cmd("adjustment", account, amount_usd, reason, home, config, as_json)


@accounts_app.command("balance", short_help="Show a balance.")
def accounts_balance(account: AccountArg, as_json: JsonOpt = False, home: HomeOpt = None,
                     config: ConfigOpt = None) -> None:
    """The balance according to the database (top-ups minus recorded charges)."""
    from perilune.accounting.pricing import usd_str
    from perilune.store.ledger import LedgerStore

    store = _store(config, home)
    if store.get_account(account) is None:
        raise fail(f"no account {account!r}")
    balance, _ = LedgerStore(store.db).balance_snapshot(account)
    if as_json:
        print(orjson.dumps({"account_id": account, "balance_usd": usd_str(balance), "currency": "USD"}).decode())
    else:
        print(usd_str(balance))


LimitOpt = Annotated[str | None, typer.Option(metavar="N", help="Per minute: a number >= 1, or 'unlimited'. "
                                              "Omitted: left as it is.")]


def _limit(name: str, value: str | None) -> int | None:
    """--rpm 60 -> 60, --rpm unlimited -> None."""
    v = (value or "").strip().lower()
    if v in ("unlimited", "none", "off"):
        return None
    try:
        n = int(v)
    except ValueError:
        raise fail(f"--{name} must be a whole number >= 1 or 'unlimited', got {value!r}", 2) from None
    if n < 1:
        raise fail(f"--{name} must be >= 1 (or 'unlimited'), got {n}", 2)
    return n


def _target(key: str | None, account: str | None) -> tuple[str, str]:
    if (key is None) == (account is None):
        raise fail("give exactly one of --key KEY_ID and --account ACCOUNT_ID", 2)
    return ("key", key) if key else ("account", account or "")


def _limits_rows(store: Any, kind: str | None, target: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if kind in (None, "account"):
        for a in store.list_accounts():
            if target is None or a["id"] == target:
                rows.append({"kind": "account", "id": a["id"], "name": a["name"], "rpm": a.get("rpm_limit"),
                             "tpm": a.get("tpm_limit")})
    if kind in (None, "key"):
        for k in store.list_keys():
            if target is None or k.id == target:
                rows.append({"kind": "key", "id": k.id, "name": k.name, "rpm": k.rpm_limit, "tpm": k.tpm_limit})
    return rows


def _show_limits(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit(rows, (), True)
        return
    emit([{**r, "rpm": r["rpm"] or "unlimited", "tpm": r["tpm"] or "unlimited"} for r in rows],
         ("kind", "id", "name", "rpm", "tpm"), False)


KeyOpt = Annotated[str | None, typer.Option(metavar="KEY_ID", help="Key id.")]
AccountOpt = Annotated[str | None, typer.Option(metavar="ACCOUNT_ID", help="Account id.")]


@limits_app.command("set", short_help="Change the limits given of a key or an account.")
def limits_set(key: KeyOpt = None, account: AccountOpt = None, rpm: LimitOpt = None, tpm: LimitOpt = None,
               as_json: JsonOpt = False, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Change the rate limits of a key or an account; a limit not given stays as it is (running
    gateways pick the change up within a second)."""
    from perilune.store.ledger import LedgerStore

    kind, target = _target(key, account)
    changes = {name: _limit(name, v) for name, v in (("rpm", rpm), ("tpm", tpm)) if v is not None}
    if not changes:
        raise fail("nothing to change: give --rpm and/or --tpm (a number, or 'unlimited')", 2)
    store = _store(config, home)
    if not LedgerStore(store.db).change_limits(kind, target, changes):
        raise fail(f"no {kind} {target!r}")
    _show_limits(_limits_rows(store, kind, target), as_json)


@limits_app.command("show", short_help="Show rate limits.")
def limits_show(key: KeyOpt = None, account: AccountOpt = None, as_json: JsonOpt = False, home: HomeOpt = None,
                config: ConfigOpt = None) -> None:
    """Show the rate limits of a key, an account, or (with neither) of every account and key."""
    store = _store(config, home)
    if key is None and account is None:
        rows = _limits_rows(store, None, None)
    else:
        kind, target = _target(key, account)
        rows = _limits_rows(store, kind, target)
        if not rows:
            raise fail(f"no {kind} {target!r}")
    _show_limits(rows, as_json)


app.add_typer(identities_app, name="identities")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
