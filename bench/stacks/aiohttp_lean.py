"""Bare proxy: aiohttp server + the lean pooled HTTP/1.1 client (lean_client.py), on uvloop."""

from __future__ import annotations

import uvloop
from aiohttp import web

from bench.stacks.common import PATH, args, enrich, host_port, is_stream
from bench.stacks.lean_client import Pool


def build(upstream: str) -> web.Application:
    app = web.Application()
    pool = Pool(*host_port(upstream))

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stream = is_stream(body)
        up = await pool.request("POST", PATH, body)
        if not stream:
            return web.Response(body=enrich(await up.read()), content_type="application/json", status=up.status)
        resp = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for piece in up.pieces():
            await resp.write(piece)
        await resp.write_eof()
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_post(PATH, chat)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    a = args()
    uvloop.install()
    web.run_app(build(a.upstream), host="127.0.0.1", port=a.port, access_log=None, print=None, backlog=4096)
