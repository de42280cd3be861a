"""A lean pooled HTTP/1.1 client on an asyncio protocol: the candidate upstream client of the comparison.

Keep-alive connections per upstream, reused LIFO; Content-Length and chunked answers; the body is
either read whole (``read()``) or iterated piece by piece as it arrives (``pieces()``), with
back-pressure (reading is paused while more than ``HIGH`` bytes wait for the consumer). A response
abandoned before its end (the caller stops iterating, is cancelled, or fails) closes its connection
instead of returning it to the pool, so a half-read answer can never leak into the next request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

HIGH = 256 * 1024


class UpstreamError(Exception):
    pass


class Response:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.pieces_q: deque[bytes] = deque()
        self.queued = 0
        self.complete = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None

    def _push(self, piece: bytes) -> None:
        self.pieces_q.append(piece)
        self.queued += len(piece)
        if self.queued > HIGH and self.conn.transport is not None:
            self.conn.transport.pause_reading()
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def pieces(self) -> AsyncIterator[bytes]:
        try:
            while True:
                while self.pieces_q:
                    piece = self.pieces_q.popleft()
                    self.queued -= len(piece)
                    if self.queued <= HIGH // 2 and self.conn.transport is not None:
                        self.conn.transport.resume_reading()
                    yield piece
                if self.complete:
                    return
                if self.error is not None:
                    raise self.error
                self.waiter = asyncio.get_running_loop().create_future()
                await self.waiter
        finally:
            if not (self.complete and not self.pieces_q):
                self.conn.abandon()

    async def read(self) -> bytes:
        return b"".join([p async for p in self.pieces()])


class Conn(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.resp: Response | None = None
        self.head_fut: asyncio.Future[Response] | None = None
        self.state = "idle"
        self.need = 0
        self.keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        err = UpstreamError("upstream closed the connection")
        if self.head_fut is not None and not self.head_fut.done():
            self.head_fut.set_exception(err)
        if self.resp is not None and not self.resp.complete:
            self.resp.error = err
            self.resp._wake()
        self.pool.forget(self)

    def abandon(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.pool.forget(self)

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.resp, self.state, self.keep = Response(self), "head", True
        self.head_fut = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.head_fut

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        resp = self.resp
        if resp is None:
            return
        if self.state == "head":
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
            del buf[:i + 4]
            resp.status = int(lines[0].split(" ", 2)[1])
            chunked, length = False, 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                k, v = k.strip().lower(), v.strip()
                resp.headers.append((k, v))
                if k == "content-length":
                    length = int(v)
                elif k == "transfer-encoding":
                    chunked = "chunked" in v.lower()
                elif k == "connection" and v.lower() == "close":
                    self.keep = False
            self.state, self.need = ("chunk", 0) if chunked else ("length", length)
            assert self.head_fut is not None
            self.head_fut.set_result(resp)
        if self.state == "length":
            if buf:
                take = bytes(buf[:self.need])
                del buf[:len(take)]
                self.need -= len(take)
                resp._push(take)
            if self.need <= 0:
                self._done(resp)
            return
        while self.state == "chunk":
            j = buf.find(b"\r\n")
            if j < 0:
                return
            size = int(bytes(buf[:j]).split(b";")[0], 16)
            if size == 0:
                if buf.find(b"\r\n", j + 2) < 0:
                    return
                del buf[:buf.find(b"\r\n", j + 2) + 2]
                self._done(resp)
                return
            if len(buf) < j + 4 + size:
                return
            resp._push(bytes(buf[j + 2:j + 2 + size]))
            del buf[:j + 4 + size]

    def _done(self, resp: Response) -> None:
        self.state, self.resp = "idle", None
        resp.complete = True
        resp._wake()
        if self.keep and self.transport is not None:
            self.pool.release(self)
        else:
            self.abandon()


class Pool:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Conn] = []
        self.host_header = f"Host: {host}:{port}\r\n".encode()

    def forget(self, conn: Conn) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def release(self, conn: Conn) -> None:
        self.idle.append(conn)

    async def _conn(self) -> Conn:
        while self.idle:
            c = self.idle.pop()
            if c.transport is not None and not c.transport.is_closing():
                return c
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: Conn(self), self.host, self.port)
        return proto

    async def request(self, method: str, path: str, body: bytes, headers: bytes = b"") -> Response:
        """Send one request (``headers``: extra raw header lines, each ending in CRLF); returns once the
        status line and headers are in."""
        conn = await self._conn()
        head = (b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()) + self.host_header + headers
                + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        return await conn.send(head + body)
