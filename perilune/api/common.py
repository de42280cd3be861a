"""What every route shares: request ids, auth, body limits, error envelopes, the request's lifecycle.

A route is ``async def handler(ctx: Ctx) -> web.StreamResponse`` wrapped by :func:`endpoint`. The
wrapper is the only place that turns a :class:`PeriluneError` into a response, and the only place
that finishes a request's :class:`~perilune.gateway.lifecycle.Lifecycle` (settle, then record), once,
whatever happened. A generation handler parses, builds a :class:`Call` and calls ``ctx.serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from perilune.errors import PayloadTooLarge, PeriluneError, ServerShuttingDown
from perilune.gateway.auth import Principal
from perilune.gateway.lifecycle import Lifecycle
from perilune.gateway.pipeline import ROUTE_HEADER, Call, route_header
from perilune.gateway.relay import PickEncoder
from perilune.logs import REQUEST_ID
from perilune.schema.text import check_params

if TYPE_CHECKING:
    from perilune.app import Services

log = logging.getLogger("perilune.api")
access_log = logging.getLogger("perilune.access")

SERVICES: web.AppKey[Services] = web.AppKey("services")
JSON_CT = "application/json"


_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(3), "big"))


def new_request_id() -> str:
    """Unique across processes and restarts: 48 random bits per process, then a counter."""
    return f"req_{_ID_PREFIX}{next(_ID_COUNTER):012x}"


@dataclass(slots=True)
class Ctx:
    request: web.Request
    services: Services
    lifecycle: Lifecycle
    principal: Principal | None = None

    @property
    def request_id(self) -> str:
        return self.lifecycle.request_id

    async def body(self, limit: int | None = None) -> bytes:
        limit = limit or self.services.settings.max_body_bytes
        length = self.request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"Request body is {length} bytes; the limit is {limit} bytes.")
        try:
            data = await self.request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.") from None
        if len(data) > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        return data

    def json(self, body: bytes, status: int = 200) -> web.Response:
        return web.Response(body=body, status=status, content_type=JSON_CT,
                            headers={"x-request-id": self.request_id})

    async def serve(self, call: Call, pick: PickEncoder, headers: dict[str, str] | None = None
                    ) -> web.StreamResponse:
        """Hand the request to its lifecycle: admission, attempts, relay (settled and recorded by the
        route wrapper)."""
        return await self.lifecycle.serve(call, pick, headers)


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def error_response(e: PeriluneError, dialect: str, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id, **e.headers()}
    return web.Response(body=e.render(dialect), status=e.status_code, content_type=JSON_CT, headers=headers)


async def _send_now(resp: web.StreamResponse, request: web.Request) -> None:
    """Send a complete answer from inside the handler, so that what the request does afterwards (settle,
    record) is not on the client's path. A client that went away meanwhile is the server's to notice."""
    with contextlib.suppress(ConnectionError):
        await resp.prepare(request)
        await resp.write_eof()


def endpoint(dialect: str, name: str, *, auth: str = "key", records: bool = False
             ) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a route. ``auth``: "key" (any valid key), "admin", or "none". ``records``: a generation
    endpoint, whose every authenticated request leaves exactly one usage record."""

    def wrap(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            services = request.app[SERVICES]
            request_id = new_request_id()
            REQUEST_ID.set(request_id)  # every log line of this request carries its id
            lc = Lifecycle(request, request_id=request_id, dialect=dialect, endpoint=name,
                           billing=services.billing, pipeline=services.pipeline, recorder=services.recorder,
                           streams=services.streams, records=records)
            ctx = Ctx(request, services, lc)
            try:
                if auth == "key":
                    ctx.principal = lc.principal = await services.keys.authenticate(request.headers)
                elif auth == "admin":
                    ctx.principal = await services.keys.authenticate_admin(request.headers)
                check_params(request.query, request.match_info)  # no NUL reaches a database query
                resp = await fn(ctx)
                if records and not resp.prepared:
                    await _send_now(resp, request)  # the answer leaves before the settlement and the record
                return resp
            except PeriluneError as e:
                lc.fail(e)
                resp = error_response(e, dialect, request_id)
                if lc.attempts:
                    resp.headers[ROUTE_HEADER] = route_header(lc.attempts)
                return resp
            except asyncio.CancelledError:
                if lc.shutting_down and (task := asyncio.current_task()) is not None:
                    task.uncancel()  # the server ended it while stopping: say so, in the client's dialect
                    err = ServerShuttingDown("The server is shutting down; the request was ended before an "
                                             "upstream answered.")
                    lc.fail(err)
                    return error_response(err, dialect, request_id)
                if lc.status == 200:
                    lc.status, lc.error_type = 499, "client_closed_request"
                raise
            except Exception:
                log.exception("unhandled error in %s (request %s)", name, request_id)
                lc.status, lc.error_type = 500, "internal_error"
                return error_response(PeriluneError("Internal error; the request id is in x-request-id."),
                                      dialect, request_id)
            finally:
                await lc.finish()
                if access_log.isEnabledFor(logging.INFO):
                    ms = round((time.perf_counter() - lc.started) * 1000.0, 1)
                    access_log.info("%s %s %d %.1fms", request.method, request.path, lc.status, ms, extra={
                        "fields": {"method": request.method, "path": request.path, "status": lc.status,
                                   "duration_ms": ms, "app": lc.app_id,
                                   "model": lc.served.model or lc.model_requested or None,
                                   "provider": lc.served.provider or None}})

        handler.__name__ = fn.__name__
        return handler

    return wrap
