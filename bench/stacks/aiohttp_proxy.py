"""Bare proxy: aiohttp server + aiohttp ClientSession (pooled), on uvloop. See common.py."""

from __future__ import annotations

import aiohttp
import uvloop
from aiohttp import web

from bench.stacks.common import PATH, args, enrich, is_stream


def build(upstream: str) -> web.Application:
    app = web.Application()
    session: dict[str, aiohttp.ClientSession] = {}

    async def start(app: web.Application) -> None:
        session["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def stop(app: web.Application) -> None:
        await session["s"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stream = is_stream(body)
        async with session["s"].post(upstream + PATH, data=body,
                                     headers={"Content-Type": "application/json"}) as up:
            if not stream:
                return web.Response(body=enrich(await up.read()), content_type="application/json",
                                    status=up.status)
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            async for piece in up.content.iter_any():
                await resp.write(piece)
            await resp.write_eof()
            return resp

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_post(PATH, chat)
    app.router.add_get("/health", health)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


if __name__ == "__main__":
    a = args()
    uvloop.install()
    web.run_app(build(a.upstream), host="127.0.0.1", port=a.port, access_log=None, print=None, backlog=4096)
