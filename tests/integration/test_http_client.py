"""The upstream HTTP client (perilune._http) against scripted HTTP/1.1 servers on real sockets: pooling,
framing, timeouts, cancellation, back-pressure, TLS and the translation of failures."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from perilune._http import Response, UpstreamClient
from perilune.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from perilune.providers.base import Provider, UpstreamRequest
from perilune.settings import Timeouts

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Reads each request (head + Content-Length body) and lets ``handler`` answer it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                await self.handler(head + body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            writer.close()

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def provider(base_url: str, **timeouts: float) -> Provider:
    return Provider("up", "openai-compatible", base_url, None, None, False, Timeouts(**timeouts))


def post(url: str, body: bytes = b'{"a":1}', **headers: str) -> UpstreamRequest:
    return UpstreamRequest("POST", url + "/chat/completions", {"Content-Type": "application/json", **headers}, body)


async def body_pieces(client: UpstreamClient, p: Provider, resp: Response) -> AsyncIterator[bytes]:
    """The body as the stream relay reads it: next_piece until the end, the answer closed when the
    consumer stops early (as the relay's stream does)."""
    try:
        while piece := await client.next_piece(p, resp):
            yield piece
    finally:
        resp.close()


def ok(body: bytes, *extra: str) -> bytes:
    more = "".join(f"{h}\r\n" for h in extra)
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{more}\r\n"
            ).encode() + body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[Server, str]]]]:
    servers: list[Server] = []

    async def start(handler: Handler) -> tuple[Server, str]:
        s = Server(handler)
        servers.append(s)
        return s, await s.start()

    yield start
    for s in servers:
        await s.stop()


async def test_keep_alive_reuses_one_connection_and_sends_a_plain_request(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(ok(b'{"ok":true}'))

    srv, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    for _ in range(3):
        resp = await client.open(p, post(url, Authorization="Bearer k"))
        assert (resp.status, resp.content_type, resp.headers["CONTENT-TYPE"]) == (200, "application/json",
                                                                                  "application/json")
        assert await client.read(p, resp) == b'{"ok":true}'
    assert srv.connections == 1
    port = url.split(":")[2].split("/")[0]
    assert srv.requests[0] == (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() +
                               b"\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\n"
                               b"Content-Length: 7\r\n\r\n" + b'{"a":1}')
    await client.close()


async def test_chunked_with_trailers_gzip_and_close_delimited_bodies(serve) -> None:  # type: ignore[no-untyped-def]
    packed = gzip.compress(b'{"zipped":1}')
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n",
        ok(packed, "Content-Encoding: gzip"),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        ok(b"fresh"),
    ]

    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        data = answers.pop(0)
        w.write(data)
        if b"Connection: close" in data:
            await w.drain()
            w.close()

    srv, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    got = [await client.read(p, await client.open(p, post(url))) for _ in range(3)]
    assert got == [b"abcdefg", b'{"zipped":1}', b"until the end"]
    assert srv.connections == 1  # the close-delimited answer came last on the reused connection
    assert await client.read(p, await client.open(p, post(url))) == b"fresh"
    assert srv.connections == 2  # the pool noticed the close: a new connection
    await client.close()


async def test_a_half_read_answer_closes_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"6\r\ndata 1\r\n")
        await w.drain()
        await asyncio.sleep(0.2)
        with_rest = b"6\r\ndata 2\r\n0\r\n\r\n"
        w.write(with_rest)

    srv, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    resp = await client.open(p, post(url))
    pieces = body_pieces(client, p, resp)
    assert await anext(pieces) == b"data 1"
    await pieces.aclose()  # the consumer stops mid-body
    await asyncio.wait_for(srv.closed.wait(), 2)
    resp = await client.open(p, post(url))
    assert [piece async for piece in body_pieces(client, p, resp)] == [b"data 1", b"data 2"]
    assert srv.connections == 2
    await client.close()


async def test_timeouts_become_upstream_timeouts(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        if b"silent" in req:
            await asyncio.sleep(5)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")  # then nothing

    _, url = await serve(answer)
    client, p = UpstreamClient(), provider(url, first_byte_s=0.3, stream_idle_s=0.3)
    with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.3 s"):
        await client.open(p, post(url, b"silent"))
    resp = await client.open(p, post(url))
    with pytest.raises(UpstreamTimeout, match="stopped sending the response body"):
        await client.read(p, resp)
    resp = await client.open(p, post(url))
    with pytest.raises(UpstreamTimeout, match=r"stream stalled for more than 0\.3 s"):
        async for _ in body_pieces(client, p, resp):
            pass
    await client.close()


async def test_cancelled_while_waiting_closes_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        w.write(ok(b"late"))

    srv, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    task = asyncio.create_task(client.open(p, post(url)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(srv.closed.wait(), 2)  # the server saw the connection go, before answering
    assert await client.read(p, await client.open(p, post(url))) == b"late"
    assert srv.connections == 2
    await client.close()


async def test_drops_refusals_and_bad_headers_are_upstream_errors(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await w.drain()
        w.close()

    srv, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    with pytest.raises(UpstreamUnavailable, match="dropped the connection"):
        await client.read(p, await client.open(p, post(url)))
    with pytest.raises(UpstreamRejected, match="line break"):
        await client.open(p, post(url, **{"X-Evil": "a\r\nHost: elsewhere"}))
    await srv.stop()
    await asyncio.sleep(0.05)
    with pytest.raises(UpstreamUnavailable, match="is unreachable"):
        await client.open(p, post(url))
    await client.close()


async def test_max_connections_queues_requests_on_the_pool(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        w.write(ok(b"x"))

    srv, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    p.max_connections = 1

    async def one() -> bytes:
        return await client.read(p, await client.open(p, post(url)))

    assert await asyncio.gather(*(one() for _ in range(4))) == [b"x"] * 4
    assert srv.connections == 1
    await client.close()


async def test_back_pressure_pauses_reading_for_a_slow_consumer(serve) -> None:  # type: ignore[no-untyped-def]
    big = bytes(range(256)) * 8192  # 2 MiB

    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(ok(big))
        await w.drain()

    _, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    resp = await client.open(p, post(url))
    await asyncio.sleep(0.3)  # let the upstream send as much as the client takes
    paused = resp._conn.paused  # the state under test
    queued = resp._queued
    got = b"".join([piece async for piece in body_pieces(client, p, resp)])
    assert paused and queued < 4 * 256 * 1024
    assert got == big
    await client.close()


def _tls_pair(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp / "cert.pem"))
    return server, client


async def test_tls_verifies_the_certificate(tmp_path: Path) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path)

    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(ok(b"secret"))

    srv = Server(answer)
    url = await srv.start(server_ctx)
    p = provider(url)
    trusted = UpstreamClient(client_ctx)
    assert await trusted.read(p, await trusted.open(p, post(url))) == b"secret"
    await trusted.close()
    untrusted = UpstreamClient()  # the system's roots do not know this certificate
    with pytest.raises(UpstreamUnavailable, match=r"is unreachable.*CERTIFICATE_VERIFY_FAILED"):
        await untrusted.open(p, post(url))
    await untrusted.close()
    await srv.stop()


async def test_what_arrived_together_is_read_as_one_piece(serve) -> None:  # type: ignore[no-untyped-def]
    """Several chunks of one read come out of next_piece as one piece (so a stream's events that arrived
    together are relayed together); a chunk sent later is a piece of its own, delivered without waiting
    for more."""
    later = asyncio.Event()

    async def answer(req: bytes, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                b"".join(b"5\r\nevt%02d\r\n" % i for i in range(5)))
        await w.drain()
        await later.wait()
        w.write(b"5\r\nlast!\r\n0\r\n\r\n")

    _, url = await serve(answer)
    client, p = UpstreamClient(), provider(url)
    resp = await client.open(p, post(url))
    pieces = body_pieces(client, p, resp)
    assert await anext(pieces) == b"evt00evt01evt02evt03evt04"  # one write of the server, one read here
    later.set()
    assert await anext(pieces) == b"last!"
    assert [piece async for piece in pieces] == []
    await client.close()
