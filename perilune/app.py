"""Builds the aiohttp application; its startup and cleanup own the clients, stores and workers.

Server choice, measured side by side on this project's machines (one process, 20 B upstream, 16
connections): aiohttp server + aiohttp client used 249 µs CPU per proxied request, uvicorn+httptools
with a raw ASGI app 285 µs, granian 379 µs; httpx as the upstream client cost 2.4 ms. So perilune
serves with aiohttp on uvloop. Upstreams are called with perilune's own pooled HTTP/1.1 client
(``perilune._http``), which halved the bare proxy's CPU against aiohttp's client (BENCHMARKS.md, issue 14).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

import perilune.api.account as account_api
from perilune import __version__, dashboard
from perilune._http import UpstreamClient
from perilune._outbound import OutboundPolicy
from perilune.accounting.billing import Billing
from perilune.accounting.catalog import Catalog, build_catalog, public_entry
from perilune.accounting.ledger import Accountant
from perilune.accounting.recorder import UsageRecorder
from perilune.accounting.retention import Retention, RetentionPolicy
from perilune.api import admin, identities, media, ops
from perilune.api import anthropic as anthropic_api
from perilune.api import models as models_api
from perilune.api import openai as openai_api
from perilune.api import providers as providers_api
from perilune.api import responses as responses_api
from perilune.api import router as router_api
from perilune.api import usage as usage_api
from perilune.api.common import SERVICES, Ctx, endpoint
from perilune.api.openapi_doc import openapi_document
from perilune.errors import MethodNotAllowed, NotFound
from perilune.gateway.auth import KeyCache
from perilune.gateway.identities import identity_links
from perilune.gateway.jwt import build_verifier
from perilune.gateway.lifecycle import Streams
from perilune.gateway.pipeline import Pipeline
from perilune.gateway.resilience import Health, ReachabilityProbe, policy_from_settings
from perilune.gateway.routing import Router
from perilune.limits.base import Limiter
from perilune.limits.memory import MemoryLimiter
from perilune.limits.redis import RedisLimiter
from perilune.metrics import Metrics
from perilune.providers.base import Provider
from perilune.providers.registry import build_providers, sim_provider
from perilune.router.service import RouterCollector, RouterService, in_daemon_thread
from perilune.router.service import from_plan as router_from_plan
from perilune.router.service import plan as router_plan
from perilune.settings import Settings
from perilune.store.db import Database
from perilune.store.keys import KeyStore
from perilune.store.ledger import LedgerStore
from perilune.store.responses import ResponseStore

log = logging.getLogger("perilune")


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    providers: dict[str, Provider]
    router: Router
    upstream: UpstreamClient
    pipeline: Pipeline
    billing: Billing
    streams: Streams
    db: Database
    key_store: KeyStore
    keys: KeyCache
    recorder: UsageRecorder
    accountant: Accountant
    ledger: LedgerStore
    model_entries: list[dict[str, Any]] = field(default_factory=list)
    models_json: bytes = b"[]"
    openapi_json: bytes = b"{}"
    ready: bool = False
    stop_by: float = 0.0  # monotonic deadline of a shutdown under way (SIGTERM + the grace period)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(thread_name_prefix=POOL_PREFIX))

    forever: list[asyncio.Task[Any]] = field(default_factory=list)
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Work that must finish but need not delay a response (drained at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def spawn_forever(self, coro: Coroutine[Any, Any, None]) -> None:
        """A background loop that runs until shutdown (cancelled then, not awaited)."""
        self.forever.append(asyncio.get_running_loop().create_task(coro))

    metrics: Metrics | None = None
    retention: Retention | None = None
    semantic_router: RouterService | None = None  # POST /v1/router; loaded at start (perilune.router)
    health: Health = field(default_factory=Health)  # breakers and live figures per deployment (issue 9)
    probe: ReachabilityProbe | None = None
    responses: ResponseStore = field(init=False)  # stored Responses (POST /v1/responses)
    router_loading: asyncio.Task[None] | None = None  # a MiniLM embedder loading in the background


def build_services(settings: Settings, *, sim_url: str | None = None,
                   environ: dict[str, str] | None = None, metrics_dir: str | None = None) -> Services:
    env = dict(os.environ if environ is None else environ)
    catalog = build_catalog(settings)
    providers = build_providers(settings, env)
    if sim_url:
        providers.update(sim_provider(settings, sim_url))
    health = Health(policy_from_settings(settings.resilience))
    router = Router(catalog, providers, settings=settings, health=health)
    upstream = UpstreamClient()
    db = Database(settings.db_url, settings.database_timeout_s)
    key_store = KeyStore(db)
    outbound = OutboundPolicy.from_settings(settings.outbound)
    jwt = build_verifier(settings.jwt, env, outbound) if settings.jwt else None
    links = identity_links(settings, key_store) if settings.jwt else None
    keys = KeyCache(key_store, admin_key=env.get(settings.admin_key_env) or None,
                    refresh_s=settings.key_refresh_s, jwt=jwt, identities=links)
    metrics = Metrics(share_dir=metrics_dir)  # shared: the worker processes of one server add up
    recorder = UsageRecorder(db, settings.home_path / "spool", max_pending=settings.usage_queue_size,
                             batch_size=settings.usage_batch_size, flush_s=settings.usage_flush_s,
                             max_pending_bytes=settings.usage_max_pending_bytes,
                             payload_max_bytes=settings.observability_max_bytes, metrics=metrics,
                             access_log=settings.usage_access_log, sinks=_sinks(settings),
                             stop_timeout_s=settings.database_timeout_s + 2.0,
                             mode=settings.usage_writer)
    ledger = LedgerStore(db)
    limiter: Limiter = RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
    accountant = Accountant(limiter, ledger, enforce_balance=settings.prepaid, refresh_s=settings.key_refresh_s)
    accountant.outbound = outbound
    billing = Billing(limiter, accountant, settings.home_path / "spool")
    pipeline = Pipeline(router, upstream, health=health, total_s=settings.timeouts.total_s)
    s = Services(settings, catalog, providers, router, upstream, pipeline, billing, Streams(),
                 db, key_store, keys, recorder, accountant, ledger)
    s.metrics, s.retention = metrics, Retention(db, RetentionPolicy.from_settings(settings))
    s.health = health
    s.probe = ReachabilityProbe(health, [(p.name, p.base_url) for p in providers.values() if p.ready],
                                interval_s=settings.resilience.reachability_interval_s,
                                timeout_s=settings.resilience.reachability_timeout_s)
    s.responses = ResponseStore(db)
    s.model_entries = [public_entry(m, enabled=router.is_available(m), provider=_shown_provider(router, m))
                       for m in catalog]
    s.models_json = orjson.dumps(s.model_entries)
    s.openapi_json = orjson.dumps(openapi_document(__version__))
    return s


async def _start_router(s: Services) -> None:
    """Check the router's profiles and settings now (a configuration error stops the start); build it now,
    or, when its embedder must load a model (MiniLM: seconds), in the background: /v1/router waits for it."""
    r = s.settings.router
    p = await asyncio.to_thread(router_plan, r.profiles, r.embedder, r.threads or None)

    def build() -> RouterService:
        svc = router_from_plan(p, s.catalog, s.router.is_available, aliases=r.aliases, cache_size=r.cache_size)
        if s.metrics is not None:
            s.metrics.registry.register(RouterCollector(svc.stats))
        log.info("semantic router: %d profiled models, %d clusters, embedder %s (%s)", len(svc.models),
                 svc.profiles.k, svc.embedder.name, svc.source)
        return svc

    if not p.slow:
        s.semantic_router = build()
        return

    async def load() -> None:
        s.semantic_router = await in_daemon_thread(build)

    s.router_loading = asyncio.get_running_loop().create_task(load())


def _sinks(settings: Settings) -> list[Any]:
    from perilune.tracing import span_sink

    sink = span_sink() if settings.otel_traces else None
    return [sink] if sink is not None else []


def _shown_provider(router: Router, m: Any) -> str:
    serving = [p.name for p in router.serving(m) if p.ready]
    return serving[0] if serving else (m.providers[0] if m.providers else m.vendor)


@endpoint("openai", "health", auth="none")
async def health(ctx: Ctx) -> web.StreamResponse:
    ok = ctx.services.ready
    return ctx.json(orjson.dumps({"status": "ok" if ok else "starting", "version": __version__}),
                    status=200 if ok else 503)


@endpoint("openai", "openapi", auth="none")
async def openapi(ctx: Ctx) -> web.StreamResponse:
    return ctx.json(ctx.services.openapi_json)


@endpoint("openai", "fallback", auth="none")
async def fallback(ctx: Ctx) -> web.StreamResponse:
    path = ctx.request.path
    allowed: set[str] = set()
    for res in ctx.request.app.router.resources():  # the routes whose path matches, for any method
        if res.canonical != "/{tail}":
            allowed |= (await res.resolve(ctx.request))[1]
    if allowed:
        raise MethodNotAllowed(f"Method {ctx.request.method} is not allowed on {path}.",
                               allow=tuple(sorted(allowed)))
    raise NotFound(f"Unknown URL: {ctx.request.method} {path}. See /openapi.json for perilune's API.",
                   code="unknown_url")


def build_app(settings: Settings, *, sim_url: str | None = None, migrate: bool = True,
              metrics_dir: str | None = None) -> web.Application:
    app = web.Application(client_max_size=max(settings.max_body_bytes, settings.max_upload_bytes) + 1024,
                          handler_args={"max_field_size": 16384})
    services = build_services(settings, sim_url=sim_url, metrics_dir=metrics_dir)
    app[SERVICES] = services

    r = app.router
    r.add_post("/v1/chat/completions", openai_api.chat_completions)
    r.add_post("/v1/completions", openai_api.completions)
    r.add_post("/v1/embeddings", openai_api.embeddings)
    r.add_post("/v1/messages", anthropic_api.messages)
    r.add_post("/v1/messages/count_tokens", anthropic_api.count_tokens)
    responses_api.routes(app)
    r.add_post("/v1/images/generations", media.image_generations)
    r.add_post("/v1/audio/transcriptions", media.transcriptions)
    models_api.routes(app, require_key=settings.models_require_key)  # /v1/models, /v1/models/{id}, /
    r.add_get("/health", health)
    providers_api.routes(app)  # GET /v1/providers
    ops.routes(app, public_metrics=settings.metrics_public)  # /ready, /metrics
    usage_api.routes(app)
    dashboard.routes(app)
    r.add_get("/openapi.json", openapi)
    admin.routes(app)
    identities.routes(app)
    account_api.routes(app)
    router_api.routes(app)
    r.add_route("*", "/{tail:.*}", fallback)

    async def startup(app: web.Application) -> None:
        s = app[SERVICES]
        asyncio.get_running_loop().set_default_executor(s.executor)
        if migrate:
            await asyncio.to_thread(s.db.migrate)
        await s.keys.start()
        await s.accountant.start()
        await s.billing.start()
        await s.recorder.start()
        if s.retention is not None:
            await s.retention.start()
        if s.metrics is not None and s.metrics.shared:
            s.spawn_forever(_publish_metrics(s.metrics))
        if s.settings.router.enabled:
            await _start_router(s)
        if s.probe is not None:
            await s.probe.start()
        s.ready = True

    async def shutdown(app: web.Application) -> None:
        """Before the server stops its handlers: open streams get the grace period, then a proper end."""
        s = app[SERVICES]
        s.ready = False
        s.stop_by = time.monotonic() + s.settings.shutdown_grace_s
        await s.streams.close(s.settings.shutdown_grace_s)

    async def cleanup(app: web.Application) -> None:
        s = app[SERVICES]
        s.ready = False
        for task in s.forever:
            task.cancel()
        await s.billing.stop()
        if s.probe is not None:
            await s.probe.stop()
        if s.router_loading is not None and not s.router_loading.done():
            s.router_loading.cancel()
        if s.background:
            await asyncio.wait(s.background, timeout=10)
        if s.retention is not None:
            await s.retention.stop()
        # a writer stuck on a silent database is not waited for past the grace period: what it did not
        # acknowledge is spooled by this process
        await s.recorder.stop(max(s.stop_by - time.monotonic() - 1.0, 1.0) if s.stop_by else None)
        await s.accountant.stop()
        await s.keys.stop()
        await s.upstream.close()
        s.db.dispose()
        _release_executor(s.executor)

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


METRICS_PUBLISH_S = 1.0
POOL_PREFIX = "perilune-pool"


async def _publish_metrics(metrics: Metrics) -> None:
    """Keep this worker's figures (queue depth, spool, database state) fresh for the other workers'
    scrapes; request sums are also published after every usage batch."""
    while True:
        try:
            await asyncio.to_thread(metrics.publish)
        except OSError as e:
            log.warning("could not publish this worker's metrics: %s", e)
        await asyncio.sleep(METRICS_PUBLISH_S)


async def _tune_gc(app: web.Application) -> None:
    """Everything loaded at start (catalog, code, caches) lives for the whole process: move it out of the
    cyclic collector's sight, and collect young objects less often. Request objects are freed by
    reference counting; measured side by side this saves 100-150 us of CPU per proxied request."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run(settings: Settings, *, host: str, port: int, sim_url: str | None = None, reuse_port: bool = False,
        migrate: bool = True, sock: socket.socket | None = None, metrics_dir: str | None = None) -> bool:
    """Serve until SIGINT/SIGTERM, on uvloop when available: on ``sock`` when given (the CLI binds it
    first, so a port in use is reported before anything starts), else on host:port. Returns whether a
    thread is still blocked on the database (the caller then leaves with :func:`leave_now`)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - e.g. Windows
        pass
    app = build_app(settings, sim_url=sim_url, migrate=migrate, metrics_dir=metrics_dir)
    app.on_startup.append(_tune_gc)
    where: dict[str, Any] = {"sock": sock} if sock is not None else {
        "host": host, "port": port, "reuse_port": reuse_port or None}
    web.run_app(app, access_log=None, print=None, handler_cancellation=True,
                shutdown_timeout=settings.shutdown_grace_s + 10, backlog=4096, **where)
    blocked = blocked_threads()
    if blocked:
        log.warning("%d worker threads are still blocked in a database call; not waiting for them", blocked)
    return blocked > 0


def _release_executor(used: ThreadPoolExecutor) -> None:
    """The server's loop joins its thread pool before it closes: hand it a fresh pool (no thread until
    used, of the default size, so a loop that lives on, as in an embedding test, keeps a usable one),
    and let the used one's idle threads end without waiting for one blocked on a silent database."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
    used.shutdown(wait=False, cancel_futures=True)


def blocked_threads(wait_s: float = 0.5) -> int:
    """After the server stopped: how many of its pool's threads are still blocked (in a call to a silent
    database, its deadline not reached). Idle ones end within ``wait_s`` of the pool's shutdown."""
    deadline = time.monotonic() + wait_s
    threads = [t for t in threading.enumerate() if t.name.startswith(POOL_PREFIX + "_")]
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.0))
    return sum(t.is_alive() for t in threads)


def leave_now() -> None:
    """Exit at once: everything is drained, settled or spooled, and what is left is a thread blocked on
    a silent database, which the interpreter's exit would otherwise wait for."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
