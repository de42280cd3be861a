"""The machine's real PostgreSQL and Redis for tests: fresh database / flushed Redis DB per use.
When a service is down, tests fail under CI (CI=true) and are skipped elsewhere."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from perilune.store.db import Database

PG_ADMIN_URL = os.environ.get("PERILUNE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PERILUNE_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    msg = f"{service} is not reachable on {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI: services must run; .ci/run starts them)")
    pytest.skip(msg)


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    require("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = "perilune_t_" + secrets.token_hex(6)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fresh_redis() -> str:
    """The test Redis database, emptied."""
    require("Redis", "127.0.0.1", 6379)
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    r.close()
    return REDIS_URL


@contextmanager
def migrated_database(kind: str, tmp_path: Path) -> Iterator[Database]:
    """A migrated perilune database: an SQLite file under tmp_path, or a fresh PostgreSQL database."""
    from perilune.store.db import Database

    if kind == "sqlite":
        d = Database(f"sqlite:///{tmp_path}/usage.db")
        d.migrate()
        yield d
        d.dispose()
        return
    with fresh_postgres() as url:
        d = Database(url)
        d.migrate()
        yield d
        d.dispose()
