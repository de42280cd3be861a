"""A cheap fake OpenAI-compatible provider for the benchmark (stdlib asyncio, uvloop when installed).

    python bench/upstream.py --port 19701 [--latency-ms 0] [--chunks 20] [--chunk-delay-ms 0]

``POST /v1/chat/completions`` answers a fixed chat completion after ``latency_ms``, or, when the body
asks for ``"stream": true``, an SSE stream of ``chunks`` content chunks (``chunk_delay_ms`` apart, the
first one together with the role chunk, so the first data event is the first token), a usage chunk and
``data: [DONE]``. ``GET /health`` answers ok; ``POST /_admin/config`` with a JSON object changes
``latency_ms``, ``chunks`` or ``chunk_delay_ms`` at run time (one upstream for a whole run, so a
gateway's connection pool stays warm). A hand-written HTTP/1.1 parser keeps it far cheaper than the
gateway it feeds: it is never the bottleneck it would be with a full framework.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any, cast

CONFIG: dict[str, float] = {"latency_ms": 0.0, "chunks": 20, "chunk_delay_ms": 0.0}
ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Load testing shows where a system bends."}}],
    "usage": {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34}}).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    event: dict[str, Any] = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                             "model": "bench-model",
                             "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        event["usage"] = usage
    data = b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


ROLE = _chunk({"role": "assistant", "content": ""})
TOKEN = _chunk({"content": "word "})
FINISH = _chunk({}, "stop")
DONE_DATA = b"data: [DONE]\n\n"


def _usage_tail(chunks: int) -> bytes:
    usage = _chunk({}, usage={"prompt_tokens": 25, "completion_tokens": chunks, "total_tokens": 25 + chunks})
    return FINISH + usage + b"%x\r\n%s\r\n0\r\n\r\n" % (len(DONE_DATA), DONE_DATA)


def _head(status: int, ctype: bytes, length: int | None) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"Error")
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s\r\n\r\n" % (status, reason, ctype, framing)


class Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        method, path = head.split(" ", 2)[:2]
        self.busy = True
        asyncio.get_running_loop().create_task(self._answer(method, path, body))

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def _answer(self, method: str, path: str, body: bytes) -> None:
        try:
            if path.endswith("/chat/completions") and method == "POST":
                if CONFIG["latency_ms"]:
                    await asyncio.sleep(CONFIG["latency_ms"] / 1000)
                if b'"stream":true' in body or b'"stream": true' in body:
                    await self._stream()
                else:
                    self._write(_head(200, b"application/json", len(ANSWER)) + ANSWER)
            elif path == "/health":
                self._write(_head(200, b"application/json", 15) + b'{"status":"ok"}')
            elif path == "/_admin/config" and method == "POST":
                CONFIG.update({k: float(v) for k, v in json.loads(body).items() if k in CONFIG})
                out = json.dumps(CONFIG).encode()
                self._write(_head(200, b"application/json", len(out)) + out)
            else:
                self._write(_head(404, b"text/plain", 9) + b"not found")
        finally:
            self.busy = False
        if self.buf:
            self._next()

    async def _stream(self) -> None:
        chunks, delay = int(CONFIG["chunks"]), CONFIG["chunk_delay_ms"] / 1000
        self._write(_head(200, b"text/event-stream", None) + ROLE + TOKEN)
        for _ in range(chunks - 1):
            if delay:
                await asyncio.sleep(delay)
            if self.transport is None:
                return
            self._write(TOKEN)
        self._write(_usage_tail(chunks))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=19701)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    CONFIG.update(latency_ms=args.latency_ms, chunks=args.chunks, chunk_delay_ms=args.chunk_delay_ms)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    print(f"bench upstream on {args.host}:{args.port} at {time.strftime('%H:%M:%S')}", flush=True)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
