"""The upstream HTTP client, and the single place where transport failures and upstream HTTP statuses
become perilune errors.

A small pooled HTTP/1.1 client on asyncio protocols (measured in BENCHMARKS.md, issue 14: half the
CPU of aiohttp's ``ClientSession`` per proxied request). Per provider and origin, keep-alive
connections are reused last-in first-out; ``http://`` and ``https://`` (TLS through
``create_connection(ssl=...)``, certificates verified); no proxies, no redirects, no cookies.

- Answers with Content-Length, chunked, or delimited by the connection's close; gzip and deflate
  bodies are inflated (perilune asks for neither).
- Timeouts: ``connect_s`` for a new connection, ``first_byte_s`` from the call to the response head
  (the connection included), ``stream_idle_s`` between two pieces of the body. One timer per
  connection, moved rather than re-created.
- A body is read whole (:meth:`UpstreamClient.read`) or piece by piece as it arrives
  (:meth:`UpstreamClient.next_piece`: everything that has arrived, as one piece) with back-pressure:
  reading is paused while more than ``HIGH_WATER`` bytes wait for the consumer.
- A connection returns to its pool only after its answer was read to the end; an answer abandoned
  before (closed, failed, the caller cancelled) closes its connection, so a half-read answer never
  leaks into the next request.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime
from time import time
from typing import cast
from urllib.parse import urlsplit

from perilune.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from perilune.providers.base import Provider, UpstreamRequest

HIGH_WATER = 256 * 1024  # bytes queued for the consumer before the socket is paused
MAX_HEAD = 64 * 1024  # a response head larger than this is a broken upstream
REUSE_IDLE_S = 60.0  # an idle connection older than this is closed rather than reused
_TARGETS_MAX = 4096  # cached (provider, URL) -> (pool, request line); cleared when full


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
    except (TypeError, ValueError):
        return None


def status_error(provider: str, status: int, message: str, retry_after: str | None = None) -> UpstreamError:
    """An upstream's non-2xx answer as a perilune error."""
    text = f"{provider}: {message}" if message else f"{provider} answered HTTP {status}"
    if status == 429:
        return UpstreamRateLimited(text, retry_after_s=retry_after_s(retry_after) or 1.0)
    if status in (408, 504):
        return UpstreamTimeout(text)
    if status in (401, 403):
        return UpstreamUnavailable(f"{provider} rejected perilune's credentials for it (HTTP {status}): "
                                   f"{message}", code="upstream_auth_failed")
    if 400 <= status < 500:
        return UpstreamRejected(text, status=status if status in (400, 404, 409, 413, 422) else 400)
    return UpstreamUnavailable(f"{text} (HTTP {status})")


class _Dropped(Exception):
    """The connection closed (or sent garbage) before the answer was complete."""


class _Stalled(Exception):
    """No byte of the answer within the timeout."""


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively (a repeated header keeps its last value)."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, str]) -> None:
        self._d = d  # lower-case names

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()]

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._d.get(key.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


class Response:
    """One upstream answer: status and headers as soon as the head is in, then the body."""

    __slots__ = ("_complete", "_conn", "_error", "_inflate", "_pieces", "_queued", "_waiter", "content_type",
                 "headers", "status")

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self.status = 0
        self.headers = Headers({})
        self.content_type = ""
        self._pieces: deque[bytes] = deque()
        self._queued = 0
        self._complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._inflate: zlib._Decompress | None = None

    # -- the connection's side
    def _push(self, piece: bytes) -> None:
        if self._inflate is not None:
            piece = self._inflate.decompress(piece)
            if not piece:
                return
        self._pieces.append(piece)
        self._queued += len(piece)
        if self._queued > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        if self._inflate is not None:
            tail = self._inflate.flush()
            if tail:
                self._pieces.append(tail)
        self._complete = True
        self._wake()

    def _fail(self, error: Exception) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    @property
    def _backlog(self) -> int:
        return self._queued

    # -- the consumer's side
    async def next_piece(self) -> bytes:
        """What has arrived of the body since the last call (waiting for something if nothing has);
        ``b""`` at its end. Raises _Dropped or _Stalled."""
        while True:
            if self._pieces:
                pieces = self._pieces
                if len(pieces) == 1:
                    piece = pieces.popleft()
                else:  # several reads (or chunks of one read) are here: one piece, decoded together
                    piece = b"".join(pieces)
                    pieces.clear()
                self._queued -= len(piece)
                if self._queued <= HIGH_WATER // 2:
                    self._conn.resume()
                return piece
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = waiter = self._conn.loop.create_future()  # (asyncio.get_running_loop() costs a getpid)
            await waiter

    async def body(self) -> bytes:
        """The whole body."""
        if self._complete:
            data = b"".join(self._pieces)
            self._pieces.clear()
            self._queued = 0
            return data
        parts = []
        while piece := await self.next_piece():
            parts.append(piece)
        return b"".join(parts)

    @property
    def complete(self) -> bool:
        return self._complete

    def close(self) -> None:
        """Done with this answer: a connection whose answer was not read to the end is closed."""
        if not self._complete:
            self._conn.abandon()
            self._fail(_Dropped("closed by perilune"))


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection: at most one request in flight; parses the answer as bytes arrive."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.resp: Response | None = None
        self.head_fut: asyncio.Future[Response] | None = None
        self.state = "idle"  # idle | head | length | chunk | eof
        self.need = 0
        self.keep = True
        self.paused = False
        self.last = 0.0  # loop time of the last byte received, or of the release to the pool
        self.deadline = 0.0  # head: first-byte deadline (loop time)
        self.timer: asyncio.TimerHandle | None = None
        self.idle_s = 0.0  # stream_idle_s of the request in flight

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._cancel_timer()
        resp = self.resp
        if self.state == "eof" and resp is not None and exc is None:
            self.state, self.resp = "idle", None
            resp._finish()
        else:
            self._fail(_Dropped("the upstream closed the connection"))
        self.pool.forget(self)

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        if self.buf:  # the rest of an earlier read: rarely more than a partial line or chunk
            data = bytes(self.buf) + data
            self.buf.clear()
        try:
            rest = self._parse(data)
        except (ValueError, IndexError, zlib.error) as e:
            self._fail(_Dropped(f"malformed HTTP answer ({e.__class__.__name__})"))
            self.abandon()
            return
        if rest < len(data) and self.transport is not None:
            self.buf += data[rest:]

    def pause_writing(self) -> None:  # requests are small; nothing to hold back
        pass

    def resume_writing(self) -> None:
        pass

    # -- parsing
    def _parse(self, data: bytes) -> int:
        """Consume what ``data`` holds of the answer; returns where the unconsumed rest starts."""
        resp = self.resp
        if resp is None:  # bytes nobody asked for: the connection is unusable
            self.abandon()
            return len(data)
        pos, n = 0, len(data)
        if self.state == "head":
            while True:
                i = data.find(b"\r\n\r\n", pos)
                if i < 0:
                    if n - pos > MAX_HEAD:
                        raise ValueError("head too large")
                    return pos
                lines = data[pos:i].decode("latin-1").split("\r\n")
                pos = i + 4
                version, _, rest = lines[0].partition(" ")
                status = int(rest[:3])
                if not 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                    break
            self._head(resp, version, status, lines)
        if self.state == "length":
            if pos < n:
                take = min(n - pos, self.need)
                if n - pos > self.need:  # more than the answer: a confused upstream; never reuse this connection
                    self.keep = False
                resp._push(data[pos:pos + take] if pos or take < n else data)
                self.need -= take
            if self.need <= 0:
                self._done(resp)
            else:
                self._arm_idle()
            return n
        if self.state == "eof":
            if pos < n:
                resp._push(data[pos:] if pos else data)
            self._arm_idle()
            return n
        while self.state == "chunk":
            if self.need < 0:  # at a chunk-size line
                j = data.find(b"\r\n", pos)
                if j < 0:
                    if n - pos > 1024:
                        raise ValueError("chunk size line too long")
                    self._arm_idle()
                    return pos
                try:
                    size = int(data[pos:j], 16)
                except ValueError:  # with a chunk extension
                    size = int(data[pos:j].split(b";", 1)[0], 16)
                if size == 0:  # the last chunk, then optional trailers, then an empty line
                    if data[j + 2:j + 4] == b"\r\n":
                        end = j + 4
                    else:
                        e = data.find(b"\r\n\r\n", j + 2)
                        if e < 0:
                            self._arm_idle()
                            return pos
                        end = e + 4
                    if end < n:
                        self.keep = False
                    self._done(resp)
                    return n
                pos = j + 2
                self.need = size
            if n - pos < self.need + 2:  # wait for the whole chunk and its CRLF
                self._arm_idle()
                return pos
            resp._push(data[pos:pos + self.need])
            pos += self.need + 2
            self.need = -1
        return pos

    def _head(self, resp: Response, version: str, status: int, lines: list[str]) -> None:
        resp.status = status
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        resp.headers = Headers(headers)
        resp.content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        conn = headers.get("connection", "").lower()
        self.keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "x-gzip"):
            resp._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            resp._inflate = zlib.decompressobj(zlib.MAX_WBITS)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state, self.need = "chunk", -1
        elif "content-length" in headers:
            self.state, self.need = "length", int(headers["content-length"])
        elif status in (204, 304):
            self.state, self.need = "length", 0
        else:
            self.state, self.keep = "eof", False
        fut = self.head_fut
        self.head_fut = None
        if fut is not None and not fut.done():
            fut.set_result(resp)

    def _done(self, resp: Response) -> None:
        self.state, self.resp = "idle", None
        self._cancel_timer()
        resp._finish()
        if self.keep and self.transport is not None and not self.transport.is_closing():
            if self.paused:
                self.resume()
            self.pool.release(self)
        else:
            self.abandon()

    def _fail(self, error: Exception) -> None:
        fut = self.head_fut
        self.head_fut = None
        if fut is not None and not fut.done():
            fut.set_exception(error)
        resp = self.resp
        if resp is not None:
            self.resp = None
            resp._fail(error)

    # -- timers: one per connection, moved forward instead of re-created when possible
    def _arm(self, when: float) -> None:
        t = self.timer
        if t is not None:
            if t.when() <= when:
                return  # it fires earlier and re-arms itself then
            t.cancel()
        self.timer = self.loop.call_at(when, self._on_timer)

    def _arm_idle(self) -> None:
        self._arm(self.last + self.idle_s)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        now = self.loop.time()
        if self.state == "idle":
            return
        if self.state == "head":
            if now >= self.deadline:
                self._fail(_Stalled("head"))
                self.abandon()
            else:
                self._arm(self.deadline)
            return
        resp = self.resp
        if self.paused or (resp is not None and resp._backlog):  # the consumer is behind, not the upstream
            self.last = now
        if now - self.last >= self.idle_s:
            self._fail(_Stalled("body"))
            self.abandon()
        else:
            self._arm(self.last + self.idle_s)

    # -- flow control and lifetime
    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def abandon(self) -> None:
        """Close the connection; whatever was in flight on it fails."""
        self._cancel_timer()
        t = self.transport
        if t is not None:
            self.transport = None
            if self.state == "idle":
                t.close()
            else:
                t.abort()
        self._fail(_Dropped("the connection was closed"))
        self.state = "closed"
        self.pool.forget(self)

    def send(self, data: bytes, deadline: float, idle_s: float) -> asyncio.Future[Response]:
        if self.transport is None:
            raise _Dropped("the upstream closed the connection")
        self.resp = Response(self)
        self.state, self.keep, self.deadline, self.idle_s = "head", True, deadline, idle_s
        self.buf.clear()
        self.head_fut = fut = self.loop.create_future()
        self.transport.write(data)
        self._arm(deadline)
        return fut


class _Pool:
    """Keep-alive connections to one origin for one provider (at most ``limit`` at once, 0 = any)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, tls: ssl.SSLContext | None,
                 limit: int) -> None:
        self.loop = loop
        self.host, self.port, self.tls, self.limit = host, port, tls, limit
        self.idle: list[_Conn] = []
        self.open: set[_Conn] = set()
        self.waiters: deque[asyncio.Future[None]] = deque()
        default = 443 if tls is not None else 80
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        self.host_line = f"Host: {name if port == default else f'{name}:{port}'}\r\n"

    def release(self, conn: _Conn) -> None:
        conn.last = self.loop.time()
        self.idle.append(conn)
        self._wake_one()

    def forget(self, conn: _Conn) -> None:
        if conn in self.open:
            self.open.discard(conn)
            if conn in self.idle:
                self.idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    async def acquire(self, connect_s: float, deadline: float) -> _Conn:
        """An idle connection, or a new one (waiting for a free slot when the pool is at its limit)."""
        while True:
            now = self.loop.time()
            while self.idle:
                c = self.idle.pop()
                t = c.transport
                if t is not None and not t.is_closing() and now - c.last < REUSE_IDLE_S:
                    return c
                c.abandon()
            if not self.limit or len(self.open) < self.limit:
                break
            w = self.loop.create_future()
            self.waiters.append(w)
            async with asyncio.timeout_at(deadline):
                await w
        async with asyncio.timeout_at(min(deadline, self.loop.time() + connect_s)):
            conn = _Conn(self)
            self.open.add(conn)
            try:
                await self.loop.create_connection(lambda: conn, self.host, self.port, ssl=self.tls,
                                                  server_hostname=self.host if self.tls is not None else None)
            except BaseException:
                self.forget(conn)
                raise
        return conn

    def close(self) -> None:
        for c in list(self.open):
            c.abandon()


class UpstreamClient:
    """Pools per provider and origin. ``tls`` replaces the default certificate checks (tests)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._pools: dict[tuple[str, str, str, int], _Pool] = {}
        self._targets: dict[tuple[str, str], tuple[_Pool, str]] = {}

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _target(self, provider: Provider, url: str) -> tuple[_Pool, str]:
        key = (provider.name, url)
        hit = self._targets.get(key)
        if hit is not None and hit[0].limit == provider.max_connections:
            return hit
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamUnavailable(f"{provider.name}: cannot call {url!r} (http:// or https:// only)")
        port = parts.port or (443 if scheme == "https" else 80)
        pkey = (provider.name, scheme, parts.hostname, port)
        pool = self._pools.get(pkey)
        if pool is None or pool.limit != provider.max_connections:
            pool = _Pool(asyncio.get_running_loop(), parts.hostname, port,
                         self._context() if scheme == "https" else None, provider.max_connections)
            self._pools[pkey] = pool
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if len(self._targets) >= _TARGETS_MAX:
            self._targets.clear()
        self._targets[key] = hit = (pool, path)
        return hit

    async def close(self) -> None:
        pools, self._pools, self._targets = list(self._pools.values()), {}, {}
        for p in pools:
            p.close()

    async def open(self, provider: Provider, req: UpstreamRequest) -> Response:
        """Send the request and wait for the response head (bounded by ``first_byte_s``, the connection
        included). Cancelled while waiting, the connection is closed."""
        pool, path = self._target(provider, req.url)
        t = provider.timeouts
        body = req.body or b""
        lines = [f"{req.method} {path} HTTP/1.1\r\n", pool.host_line]
        lines += [f"{k}: {v}\r\n" for k, v in req.headers.items()]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        head = "".join(lines)
        if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1:
            raise UpstreamRejected(f"{provider.name}: refusing to send a header with a line break in it")
        deadline = pool.loop.time() + t.first_byte_s
        try:
            conn = await pool.acquire(t.connect_s, deadline)
        except TimeoutError:
            raise UpstreamTimeout(f"{provider.name} did not accept a connection within "
                                  f"{min(t.connect_s, t.first_byte_s):g} s") from None
        except OSError as e:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise UpstreamUnavailable(f"{provider.name} is unreachable: {e.strerror or e}") from None
        try:
            return await conn.send(head.encode() + body, deadline, t.stream_idle_s)
        except _Stalled:
            raise UpstreamTimeout(f"{provider.name} did not answer within {t.first_byte_s:g} s") from None
        except _Dropped as e:
            raise UpstreamUnavailable(f"{provider.name} connection failed: {e}") from None
        except BaseException:  # cancelled (a hedge's loser, a client hang-up): never reuse it
            conn.abandon()
            raise

    @staticmethod
    async def read(provider: Provider, resp: Response) -> bytes:
        """The whole body; its connection goes back to the pool."""
        try:
            return await resp.body()
        except _Stalled:
            raise UpstreamTimeout(f"{provider.name} stopped sending the response body") from None
        except _Dropped:
            raise UpstreamUnavailable(f"{provider.name} dropped the connection") from None
        finally:
            resp.close()

    @staticmethod
    async def next_piece(provider: Provider, resp: Response) -> bytes:
        """What has arrived of the body (waiting for something if nothing has); ``b""`` at its end, when
        the connection is released. A drop or an idle timeout mid-body raises an UpstreamError."""
        try:
            piece = await resp.next_piece()
        except _Stalled:
            resp.close()
            raise UpstreamTimeout(f"{provider.name} stream stalled for more than "
                                  f"{provider.timeouts.stream_idle_s:g} s") from None
        except _Dropped:
            resp.close()
            raise UpstreamUnavailable(f"{provider.name} dropped the stream") from None
        except BaseException:
            resp.close()
            raise
        if not piece:
            resp.close()
        return piece
