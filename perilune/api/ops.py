"""Operations endpoints: ``GET /ready`` (database reachable?) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from perilune import __version__
from perilune.api.common import Ctx, endpoint
from perilune.errors import StoreUnavailable
from perilune.metrics import CONTENT_TYPE
from perilune.store.usage_write import ping

PING_TIMEOUT_S = 2.0
PING_CACHE_S = 1.0
_last: dict[int, tuple[float, bool]] = {}  # id(database) -> (checked at, reachable); a cache, not state
_pinging: dict[int, asyncio.Future[None]] = {}  # a ping still running (a silent database) is not repeated


async def database_reachable(ctx: Ctx) -> bool:
    """One ``SELECT 1`` at most every PING_CACHE_S per database, bounded by PING_TIMEOUT_S. A ping that
    outlives its bound keeps running (the database layer's own deadline ends it) and no second one is
    started meanwhile, so a silent database cannot tie up the worker threads."""
    db = ctx.services.db
    now = time.monotonic()
    seen = _last.get(id(db))
    if seen is not None and now - seen[0] < PING_CACHE_S:
        return seen[1]
    running = _pinging.get(id(db))
    if running is None or running.done():
        running = _pinging[id(db)] = asyncio.ensure_future(asyncio.to_thread(ping, db))
        running.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen here or by a later call
    try:
        await asyncio.wait_for(asyncio.shield(running), PING_TIMEOUT_S)
        ok = True
    except (TimeoutError, StoreUnavailable):
        ok = False
    _last[id(db)] = (time.monotonic(), ok)
    return ok


@endpoint("openai", "ready", auth="none")
async def ready(ctx: Ctx) -> web.StreamResponse:
    """200 when serving and the database answers; 503 otherwise (requests may still be served from
    cached keys, with usage spooled to disk, but a load balancer should prefer another instance)."""
    s = ctx.services
    db_ok = await database_reachable(ctx)
    ok = s.ready and db_ok
    body = {"status": "ready" if ok else "not_ready", "version": __version__,
            "database": "ok" if db_ok else "unreachable", "usage_queue": s.recorder.depth,
            "usage_spool_bytes": await asyncio.to_thread(s.recorder.spool_size)}
    return ctx.json(orjson.dumps(body), status=200 if ok else 503)


async def _metrics(ctx: Ctx) -> web.StreamResponse:
    m = ctx.services.metrics
    body = await asyncio.to_thread(m.render) if m is not None else b""
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "x-request-id": ctx.request_id})


metrics_public = endpoint("openai", "metrics", auth="none")(_metrics)
metrics_admin = endpoint("openai", "metrics", auth="admin")(_metrics)


def routes(app: web.Application, *, public_metrics: bool) -> None:
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics_public if public_metrics else metrics_admin)
