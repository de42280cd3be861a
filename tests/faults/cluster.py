"""Two gateway processes on one fresh PostgreSQL database and one Redis database, both reached through
fault proxies; and the outside views the invariants read (the database directly, Redis directly, the
gateways' HTTP API, the ``perilune`` CLI)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg
import redis

from tests.conftest import ADMIN_KEY, ARTIFACTS, first_key, free_port, wait_http
from tests.faults.proxy import FaultProxy
from tests.services import REDIS_URL, fresh_postgres, fresh_redis

log = logging.getLogger("faults")  # progress: pytest -o log_cli=true --log-cli-level=INFO
PICO = 10**12
BALANCE_KEY = "pl:bal:{account}"  # the live balance counter in Redis (perilune/limits/redis.py)


def settings_field(*names: str) -> str | None:
    """The first of these Settings keys this version of perilune has (the lifecycle adds some)."""
    from perilune.settings import Settings

    return next((n for n in names if n in Settings.__struct_fields__), None)


def utc() -> str:
    """Wall-clock time as in the gateways' logs, for notes that tie a fault to their lines."""
    return time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def usd(pico: int | None) -> str:
    return "None" if pico is None else f"${Decimal(pico) / PICO}"


@dataclass
class Account:
    id: str
    key: str
    credit_pusd: int


@dataclass
class Node:
    """One ``perilune serve`` process."""

    name: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def sigterm(self, timeout_s: float) -> float | None:
        """SIGTERM; seconds until the process exited, or None if it was still running after timeout_s
        (then it is killed)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        return time.monotonic() - started

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0


@dataclass
class Cluster:
    sim_url: str
    db_url: str  # direct (the test's own view)
    redis_url: str  # direct
    base: Path
    top: str = ""  # top-level settings (before the tables)
    tables: str = ""  # more tables ([models."..."])
    pg: FaultProxy = field(init=False)
    redis: FaultProxy = field(init=False)
    config: Path = field(init=False)
    nodes: list[Node] = field(default_factory=list)
    default: Account | None = None

    # ---- setup ----
    def start(self, nodes: int = 2) -> Cluster:
        pg, rd = urlsplit(self.db_url), urlsplit(self.redis_url)
        self.pg = FaultProxy((pg.hostname or "127.0.0.1", pg.port or 5432), name="postgres").start()
        self.redis = FaultProxy((rd.hostname or "127.0.0.1", rd.port or 6379), name="redis").start()
        self.config = self.base / "perilune.toml"
        self.config.write_text(self.config_text())
        home = self.base / "setup"
        home.mkdir(exist_ok=True)
        key, account = first_key(home, self.config, self.direct_env(), "")
        self.default = Account(account, key, 0)
        for i in range(nodes):
            self.start_node(f"gw{i}")
        log.info("cluster up: %s", ", ".join(f"{n.name} on {n.port}" for n in self.nodes))
        return self

    def config_text(self) -> str:
        pg, rd = urlsplit(self.db_url), urlsplit(self.redis_url)
        return f"""
simulator = "never"
log_level = "info"
database_url = "postgresql://{pg.username or 'postgres'}@127.0.0.1:{self.pg.port}{pg.path}"
redis_url = "redis://127.0.0.1:{self.redis.port}{rd.path or '/0'}"
key_refresh_s = 0.5
{self.top}
[[providers]]
name = "sim"
base_url = "{self.sim_url}/v1"
forward_headers = ["x-sim-*"]

[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "{self.sim_url}"
forward_headers = ["x-sim-*"]
{self.tables}
"""

    def direct_env(self) -> dict[str, str]:
        """Environment for the test's own use of perilune (setup, CLI): straight to the services."""
        return {"PERILUNE_ADMIN_KEY": ADMIN_KEY, "PERILUNE_DATABASE_URL": self.db_url,
                "PERILUNE_REDIS_URL": self.redis_url}

    def start_node(self, name: str, home: Path | None = None) -> Node:
        home = home or self.base / name
        home.mkdir(exist_ok=True)
        port = free_port()
        log = home / "gateway.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(home), "--config",
                                     str(self.config), "--port", str(port)],
                                    env={**os.environ, "PERILUNE_ADMIN_KEY": ADMIN_KEY}, stdout=out,
                                    stderr=subprocess.STDOUT)
        node = Node(name, home, port, proc, log)
        self.nodes.append(node)
        try:
            wait_http(node.url + "/health", proc, timeout_s=40)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{node.log_tail()}") from None
        return node

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                node.proc.terminate()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(20)
            if node.alive:
                node.proc.kill()
                node.proc.wait(5)
        self.pg.stop()
        self.redis.stop()

    @property
    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    # ---- accounts ----
    def account(self, credit_usd: str, name: str = "faults") -> Account:
        """A new account with a key and a top-up, written straight to the database; usable on every
        live node when this returns."""
        from perilune.accounting.pricing import to_pico
        from perilune.store.db import Database
        from perilune.store.keys import KeyStore
        from perilune.store.ledger import LedgerStore

        db = Database(self.db_url)
        try:
            store = KeyStore(db)
            account_id = store.create_account(name)
            key, _ = store.create_key(account_id, name=name)
            credit = to_pico(Decimal(credit_usd))
            if credit:
                LedgerStore(db).add_entry(account_id, "topup", credit, "test", "fault suite")
        finally:
            db.dispose()
        acct = Account(account_id, key, credit)
        self.wait_key(acct)
        return acct

    def wait_key(self, acct: Account, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        for node in self.live:
            while True:
                r = httpx.get(node.url + "/v1/balance", headers={"Authorization": f"Bearer {acct.key}"}, timeout=5)
                if r.status_code == 200 and Decimal(r.json()["balance_usd"]) * PICO == acct.credit_pusd:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{node.name} did not take the new key/top-up within {timeout_s} s: "
                                         f"{r.status_code} {r.text[:200]}")
                time.sleep(0.1)

    # ---- outside views ----
    @contextlib.contextmanager
    def sql(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
            yield conn

    def records(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        cols = ("id", "status", "error_type", "stream", "dialect", "model", "input_tokens", "output_tokens",
                "total_cost_pusd", "charged_pusd", "free_tokens", "account_id", "estimated")
        with self.sql() as conn:
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM usage_records WHERE id = ANY(%s)", (ids,)).fetchall()
        return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}

    def sessions(self) -> str:
        """The database's sessions as PostgreSQL sees them (state / wait), for failure messages: a session
        whose client went silent mid-transaction stays open on the server, holding its locks."""
        with self.sql() as conn:
            rows = conn.execute("SELECT state, coalesce(wait_event_type, '-'), count(*), "
                                "max(extract(epoch FROM now() - xact_start))::int FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
            stuck = conn.execute("SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND state = 'idle in transaction' "
                                 "LIMIT 3").fetchall()
        return (", ".join(f"{n} {state} (wait {wait}, oldest transaction {age} s)" for state, wait, n, age in rows)
                + "".join(f"; idle in transaction after: {q}" for (q,) in stuck))

    def ledger_balance(self, account_id: str) -> int:
        """Top-ups (and other ledger entries) minus every recorded charge."""
        with self.sql() as conn:
            credits = conn.execute("SELECT coalesce(sum(amount_pusd), 0) FROM ledger_entries WHERE account_id = %s",
                                   (account_id,)).fetchone()
            charges = conn.execute("SELECT coalesce(sum(charged_pusd), 0) FROM usage_records WHERE account_id = %s",
                                   (account_id,)).fetchone()
        assert credits is not None and charges is not None
        return int(credits[0]) - int(charges[0])

    def redis_balance(self, account_id: str) -> int | None:
        r = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            v = r.get(BALANCE_KEY.format(account=account_id))
        finally:
            r.close()
        return None if v is None else int(v)

    def open_reservations(self, account_id: str) -> str:
        """The reservations Redis still holds for an account, with what the database recorded for them."""
        r = redis.Redis.from_url(self.redis_url, socket_timeout=5, decode_responses=True)
        try:
            held: dict[str, str] = r.hgetall(BALANCE_KEY.format(account=account_id).replace("bal:", "res:"))
        finally:
            r.close()
        if not held:
            return "no open reservations"
        with self.sql() as conn:
            rows = {rid: (status, charged) for rid, status, charged in conn.execute(
                "SELECT id, status, charged_pusd FROM usage_records WHERE id = ANY(%s)",
                ([rid.partition(":")[0] for rid in held],)).fetchall()}
        now = time.time()
        return "open reservations: " + "; ".join(
            f"{rid} {amount.partition('|')[0]} pico-USD, {now - int(amount.partition('|')[2] or now):.0f} s old, "
            f"record {rows.get(rid.partition(':')[0], 'none')}" for rid, amount in sorted(held.items())[:12])

    def api_balance(self, node: Node, acct: Account) -> int | None:
        r = httpx.get(node.url + "/v1/balance", headers={"Authorization": f"Bearer {acct.key}"}, timeout=10)
        if r.status_code != 200:
            return None
        return int(Decimal(r.json()["balance_usd"]) * PICO)

    def flush_redis(self) -> None:
        """FLUSHDB on the gateways' Redis database, directly: a Redis restart with no data."""
        r = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            r.flushdb()
        finally:
            r.close()

    def ledger_check(self, *, repair: bool) -> subprocess.CompletedProcess[str]:
        args = ["ledger", "check", *(["--repair"] if repair else []), "--config", str(self.config),
                "--home", str(self.base / "setup")]
        log.info("perilune %s", " ".join(args[:3]))
        return subprocess.run([sys.executable, "-m", "perilune", *args], capture_output=True, text=True,
                              env={**os.environ, **self.direct_env()}, timeout=60, check=False)

    def spooled_ids(self, node: Node) -> set[str]:
        """Usage record ids in the node's spool files (not yet replayed)."""
        ids: set[str] = set()
        for path in (node.home / "spool").glob("*usage-*.jsonl*"):
            if path.name.startswith("rejected"):
                continue
            for line in path.read_bytes().splitlines():
                if not line.strip():
                    continue
                obj = orjson.loads(line)
                row = obj.get("r", obj) if isinstance(obj, dict) else {}
                if isinstance(row, dict) and isinstance(row.get("id"), str):
                    ids.add(row["id"])
        return ids

    def usage_counters(self, node: Node) -> dict[str, int]:
        """The node's own usage-writer figures (/metrics): queue_depth, spool_bytes, records_written,
        records_spooled, records_replayed, database_up."""
        r = httpx.get(node.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
        out: dict[str, int] = {}
        for line in r.text.splitlines():
            name, _, value = line.partition(" ")
            if name.startswith("perilune_usage_") and value and "{" not in name:
                out[name.removeprefix("perilune_usage_").removesuffix("_total")] = int(float(value))
        return out

    def spooled_total(self) -> int:
        """Records the live gateways say they spooled (their Prometheus counter), replayed or not."""
        return sum(self.usage_counters(n).get("records_spooled", 0) for n in self.live)

    def writers(self) -> str:
        """Every live node's usage-writer figures, for failure messages."""
        parts = []
        for n in self.live:
            try:
                parts.append(f"{n.name} {self.usage_counters(n)}")
            except httpx.HTTPError as e:
                parts.append(f"{n.name} /metrics failed: {e.__class__.__name__}")
        return "; ".join(parts)

    def spool_bytes(self) -> int:
        return sum(p.stat().st_size for n in self.nodes for p in (n.home / "spool").glob("*usage-*.jsonl*")
                   if not p.name.startswith("rejected"))

    def logs(self) -> str:
        return "\n".join(f"--- {n.name} ({n.tracebacks()} tracebacks in its log):\n{n.log_tail(8)}"
                         for n in self.nodes)


@contextlib.contextmanager
def cluster(sim_url: str, base: Path, *, top: str = "", tables: str = "", nodes: int = 2) -> Iterator[Cluster]:
    """A fresh PostgreSQL database, the test Redis database emptied, two gateways through proxies."""
    with fresh_postgres() as db_url:
        fresh_redis()
        c = Cluster(sim_url, db_url, REDIS_URL, base, top, tables)
        try:
            yield c.start(nodes)
        finally:
            c.stop()
            keep = ARTIFACTS / "faults"  # the gateways' logs outlive pytest's temporary directories
            keep.mkdir(parents=True, exist_ok=True)
            for node in c.nodes:
                if node.log.exists():
                    shutil.copyfile(node.log, keep / f"{base.name}-{node.name}.log")
