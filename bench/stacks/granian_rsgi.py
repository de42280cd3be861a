"""Bare proxy: granian (Rust HTTP server, RSGI interface, uvloop) + the lean pooled client.

Started as ``granian --interface rsgi --loop uvloop --workers 1 --runtime-threads 1 --port PORT
bench.stacks.granian_rsgi:app`` with ``BENCH_UPSTREAM`` naming the upstream (see bench/perf.py).
"""

from __future__ import annotations

import os
from typing import Any

from bench.stacks.common import PATH, enrich, host_port, is_stream
from bench.stacks.lean_client import Pool

POOL = Pool(*host_port(os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:19701")))
JSON_HEADERS = [("content-type", "application/json")]
SSE_HEADERS = [("content-type", "text/event-stream")]


async def app(scope: Any, proto: Any) -> None:
    if scope.path == "/health":
        proto.response_bytes(200, JSON_HEADERS, b'{"status":"ok"}')
        return
    body = await proto()
    stream = is_stream(body)
    up = await POOL.request("POST", PATH, body)
    if not stream:
        proto.response_bytes(up.status, JSON_HEADERS, enrich(await up.read()))
        return
    transport = proto.response_stream(up.status, SSE_HEADERS)
    async for piece in up.pieces():
        await transport.send_bytes(piece)
