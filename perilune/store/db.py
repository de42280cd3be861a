"""The database: one SQLAlchemy engine (SQLite embedded, or PostgreSQL), migrated with Alembic.

All calls here are blocking and short; async callers run them with ``asyncio.to_thread``. The request
path never waits on them (keys are cached, usage is written in batches by a background task).

This module is the one place where SQLAlchemy's and psycopg's errors meet the error tree: a database
that cannot be reached, does not answer within ``timeout_s`` (connect, pool checkout, each
statement), or drops the connection raises :class:`perilune.errors.StoreUnavailable` (a 503 with code
``database_unavailable``) wherever it happens. Errors about the data itself (``DataError``,
``IntegrityError``) stay SQLAlchemy's: they are the store's own business.

A server that holds packets (a silent network) is not noticed by the server-side statement timeout or
by TCP; a watchdog thread therefore shuts down the socket of any connection whose statement, commit
or checkout ping has run past its deadline, which makes the blocked call fail at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import exc as sa_exc
from sqlalchemy import pool as sa_pool
from sqlalchemy.engine import Engine

from perilune.errors import StoreUnavailable

log = logging.getLogger("perilune.store")

DEFAULT_TIMEOUT_S = 5.0


def engine_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _unavailable(e: BaseException) -> StoreUnavailable:
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return StoreUnavailable(f"The database is unavailable ({e.__class__.__name__}{': ' + first if first else ''}). "
                            "Try again shortly.")


class _Watchdog:
    """Deadlines for blocking database calls; an overdue connection has its socket shut down, and the
    pool is replaced (its other connections are likely held by the same silent network)."""

    def __init__(self, on_overdue: Callable[[], None]) -> None:
        self._on_overdue = on_overdue
        self.orphans: set[int] = set()  # server processes of dropped connections (this engine's server)
        self._lock = threading.Lock()
        self._active: dict[int, tuple[float, Any]] = {}  # id(dbapi conn) -> (deadline, dbapi conn)
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, dbapi_conn: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._active[id(dbapi_conn)] = (deadline, dbapi_conn)
            heapq.heappush(self._heap, (deadline, next(self._seq), id(dbapi_conn)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="perilune-db-watchdog", daemon=True)
                self._thread.start()

    def disarm(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._active.pop(id(dbapi_conn), None)

    def _run(self) -> None:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            overdue = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    _deadline, _, key = heapq.heappop(self._heap)
                    entry = self._active.get(key)
                    if entry is not None and entry[0] <= now:
                        overdue.append(self._active.pop(key)[1])
            for conn in overdue:
                with self._lock:
                    _shut_down(conn, self.orphans)
            if overdue:
                try:
                    self._on_overdue()
                except Exception:  # the watchdog must outlive anything the pool does
                    log.exception("could not replace the connection pool")


def _shut_down(dbapi_conn: Any, orphans: set[int]) -> None:
    """Make a blocked psycopg call on ``dbapi_conn`` fail now (the pool then discards the connection).
    Its server process may live on behind the silent network, holding a transaction and its locks, so
    it is remembered and terminated from the next connection that gets through."""
    try:
        orphans.add(int(dbapi_conn.pgconn.backend_pid))
        fd = dbapi_conn.pgconn.socket
        s = socket.socket(fileno=socket.dup(fd))
    except Exception:  # closed meanwhile, or not a psycopg connection: nothing is blocked on it
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()
    log.warning("a database call ran past its deadline; its connection was dropped")


class _TimedQueuePool(sa_pool.QueuePool):
    """QueuePool whose checkout timeout is a StoreUnavailable, like every other database outage."""

    def _do_get(self) -> Any:
        try:
            return super()._do_get()
        except sa_exc.TimeoutError as e:
            raise _unavailable(e) from None


def make_engine(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Engine:
    url = engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": max(timeout_s, 1.0), "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        _translate_errors(engine)
        return engine
    ms = max(int(timeout_s * 1000), 1)
    engine = sa.create_engine(
        url, poolclass=_TimedQueuePool, pool_size=5, max_overflow=5, pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={"connect_timeout": max(int(timeout_s + 0.999), 1),
                      # a transaction left behind by a connection the watchdog dropped (its server side
                      # still open behind a silent network) must not hold its row locks for long
                      "options": f"-c statement_timeout={ms} -c lock_timeout={ms} "
                                 f"-c idle_in_transaction_session_timeout={2 * ms}",
                      "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2,
                      "tcp_user_timeout": ms})
    _translate_errors(engine)
    _watch(engine, timeout_s)
    return engine


def _translate_errors(engine: Engine) -> None:
    @sa.event.listens_for(engine, "handle_error")
    def _handle(ctx: Any) -> None:
        e = ctx.sqlalchemy_exception
        if getattr(ctx, "is_pre_ping", False):
            return  # the pool handles a failed ping itself (it reconnects once)
        if ctx.is_disconnect or isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            raise _unavailable(ctx.original_exception) from None


def _end_orphans(dog: _Watchdog, dbapi_conn: Any) -> None:
    with dog._lock:
        pids = list(dog.orphans)
        dog.orphans.clear()
    if not pids:
        return
    try:
        with dbapi_conn.cursor() as cur:
            for pid in pids:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        dbapi_conn.rollback()
        log.warning("ended %d database sessions left behind by dropped connections", len(pids))
    except Exception as e:  # best effort: the server's own timeouts end them eventually
        log.warning("could not end abandoned database sessions: %s", e.__class__.__name__)


def _watch(engine: Engine, timeout_s: float) -> None:
    dog = _Watchdog(lambda: engine.dispose(close=False))
    sa.event.listen(engine, "connect", lambda dbapi_conn, _rec: _end_orphans(dog, dbapi_conn))
    grace = timeout_s + 1.0  # the server-side statement_timeout answers first when the server can

    ping = engine.dialect.do_ping

    def watched_ping(dbapi_conn: Any) -> bool:  # the pool's pre-ping on checkout has no event of its own
        dog.arm(dbapi_conn, grace)
        try:
            return bool(ping(dbapi_conn))
        finally:
            dog.disarm(dbapi_conn)

    engine.dialect.do_ping = watched_ping  # type: ignore[method-assign,assignment]

    @sa.event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, _rec: Any) -> None:
        dog.disarm(dbapi_conn)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cur: Any, _stmt: Any, _params: Any, _ctx: Any, _many: bool) -> None:
        dog.arm(conn.connection.dbapi_connection, grace)

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cur: Any, _stmt: Any, _params: Any, _ctx: Any, _many: bool) -> None:
        dog.disarm(conn.connection.dbapi_connection)

    @sa.event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        dog.arm(conn.connection.dbapi_connection, grace)

    @sa.event.listens_for(engine, "rollback")
    def _rollback(conn: Any) -> None:
        raw = conn.connection.dbapi_connection if not conn.invalidated else None
        if raw is not None:
            dog.arm(raw, grace)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("perilune.store") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.engine = make_engine(url, timeout_s)
        self.is_sqlite = self.engine.dialect.name == "sqlite"

    def migrate(self) -> None:
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
