"""Bare proxy: uvicorn (httptools, uvloop) with a raw ASGI app + the lean pooled client."""

from __future__ import annotations

from typing import Any

import uvicorn

from bench.stacks.common import PATH, args, enrich, host_port, is_stream
from bench.stacks.lean_client import Pool

A = args()
POOL = Pool(*host_port(A.upstream))
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
        return
    parts = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    body = b"".join(parts)
    stream = is_stream(body)
    up = await POOL.request("POST", PATH, body)
    if not stream:
        out = enrich(await up.read())
        await send({"type": "http.response.start", "status": up.status, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": out})
        return
    await send({"type": "http.response.start", "status": up.status, "headers": SSE_HEADERS})
    async for piece in up.pieces():
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=A.port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", backlog=4096, lifespan="off")
