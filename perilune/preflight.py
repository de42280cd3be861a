"""Start-up checks, run before perilune says it is listening or shows a first key: bind the port,
reach Redis, reach (and migrate) the database. Each failure is one :class:`StartupError` whose
message is the whole story for the operator (what failed, where, what to do); the CLI prints it as
one line and exits non-zero, never with a traceback.

The errors of the socket layer, redis-py and SQLAlchemy met here are translated here, once.
"""

from __future__ import annotations

import errno
import socket

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from perilune.errors import StoreUnavailable
from perilune.store.db import Database, engine_url

CHECK_TIMEOUT_S = 3.0


class StartupError(Exception):
    """Perilune cannot start; the message is one line meant for the operator."""


def bind(host: str, port: int, *, backlog: int = 4096, what: str = "perilune") -> socket.socket:
    """A listening TCP socket on host:port (SO_REUSEADDR only: a port in use is always an error,
    never silently shared with another server)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise StartupError(f"cannot bind {host!r}: not an address of this machine ({e.strerror}); "
                           "choose one with --host or PERILUNE_HOST") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise StartupError(_bind_message(e, host, port, what)) from None
    sock.setblocking(False)
    return sock


def _bind_message(e: OSError, host: str, port: int, what: str) -> str:
    where = f"{host}:{port}"
    if e.errno == errno.EADDRINUSE:
        return (f"port {port} is already in use on {host}, so {what} cannot listen there: stop what uses "
                "it, or choose another port with --port N (or PERILUNE_PORT=N)")
    if e.errno == errno.EACCES:
        return (f"not allowed to listen on {where} (ports below 1024 need privileges): choose another "
                "port with --port N (or PERILUNE_PORT=N)")
    if e.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine (--host / PERILUNE_HOST)"
    return f"cannot listen on {where}: {e.strerror or e}"


def shown_url(url: str) -> str:
    """A database or Redis URL with its password hidden."""
    try:
        return make_url(engine_url(url)).render_as_string(hide_password=True).replace("+psycopg", "")
    except Exception:  # not a URL SQLAlchemy parses (e.g. a redis unix:// path): show only the scheme
        return url.split("://", 1)[0] + "://…"


def check_redis(url: str, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """One PING; any failure (refused, timed out, wrong password, not Redis) is a StartupError."""
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except (RedisError, OSError) as e:
        raise StartupError(f"cannot reach Redis at {_redis_shown(url)}: {_reason(e)} "
                           "(redis_url / PERILUNE_REDIS_URL)") from None
    finally:
        client.close()


def _redis_shown(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}://{rest}"


def check_database(db: Database) -> None:
    """Reach the database and bring its schema up to date."""
    try:
        db.migrate()
    except StoreUnavailable as e:  # the store's own translation of a connection failure
        cause = e.__cause__ if e.__cause__ is not None else e
        raise StartupError(f"cannot use the database at {shown_url(db.url)}: {_reason(cause)} "
                           "(database_url / PERILUNE_DATABASE_URL)") from None
    except SQLAlchemyError as e:
        raise StartupError(f"cannot use the database at {shown_url(db.url)}: {_reason(e)} "
                           "(database_url / PERILUNE_DATABASE_URL)") from None
    except OSError as e:  # e.g. the SQLite file's directory is not writable
        raise StartupError(f"cannot use the database at {shown_url(db.url)}: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    """The first line of the innermost cause, without SQLAlchemy's background links."""
    inner: BaseException = e
    orig = getattr(e, "orig", None)
    if isinstance(orig, BaseException):
        inner = orig
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__
