"""What every route shares: request ids, auth, body limits, error envelopes, usage recording.

A route is ``async def handler(ctx: Ctx) -> web.StreamResponse`` wrapped by :func:`endpoint`. The
wrapper is the only place that turns a :class:`PeriluneError` into a response.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from perilune.errors import PayloadTooLarge, PeriluneError
from perilune.gateway.auth import Principal
from perilune.logs import REQUEST_ID
from perilune.schema.canonical import Outcome
from perilune.schema.text import check_params

if TYPE_CHECKING:
    from perilune.app import Services

log = logging.getLogger("perilune.api")

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
    outcome: Outcome
    principal: Principal | None = None

    @property
    def request_id(self) -> str:
        return self.outcome.request_id

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

    async def start_sse(self) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "x-request-id": self.request_id,
        })
        await resp.prepare(self.request)
        return resp


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def error_response(e: PeriluneError, dialect: str, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id, **e.headers()}
    return web.Response(body=e.render(dialect), status=e.status_code, content_type=JSON_CT, headers=headers)


async def _settle(services: Services, outcome: Outcome) -> None:
    """Settle the request's reservations, even while the handler is being cancelled."""
    accountant = services.accountant
    try:
        if accountant.limiter.remote:  # a network round trip: must not be cut short by a cancellation
            await asyncio.shield(accountant.finish(outcome))
        else:  # in-process: runs to completion without suspending
            await accountant.finish(outcome)
    except asyncio.CancelledError:
        pass
    except PeriluneError as e:  # e.g. Redis went away mid-request: the usage record still carries the cost
        log.error("could not settle request %s: %s", outcome.request_id, e.message)


async def _settle_and_record(services: Services, outcome: Outcome, p: Principal | None, app_id: str) -> None:
    await _settle(services, outcome)
    if p is not None:
        services.recorder.record(outcome, p.key_id, p.account_id, app_id)


def endpoint(dialect: str, name: str, *, auth: str = "key") -> Callable[[Handler], Callable[[web.Request],
                                                                                         Awaitable[web.StreamResponse]]]:
    """Wrap a route. ``auth``: "key" (any valid key), "admin", or "none"."""

    def wrap(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            services = request.app[SERVICES]
            outcome = Outcome(new_request_id(), time.perf_counter(), time.time(), dialect, name)
            REQUEST_ID.set(outcome.request_id)  # every log line of this request carries its id
            ctx = Ctx(request, services, outcome)
            try:
                if auth == "key":
                    ctx.principal = outcome.principal = await services.keys.authenticate(request.headers)
                elif auth == "admin":
                    ctx.principal = await services.keys.authenticate_admin(request.headers)
                check_params(request.query, request.match_info)  # no NUL reaches a database query
                return await fn(ctx)
            except PeriluneError as e:
                outcome.status, outcome.error_type = e.status_code, e.kind
                if outcome.capture and outcome.payload_response is None:
                    outcome.payload_response = e.openai_body()
                return error_response(e, dialect, outcome.request_id)
            except asyncio.CancelledError:
                outcome.status, outcome.error_type = 499, "client_closed_request"
                raise
            except Exception:
                log.exception("unhandled error in %s (request %s)", name, outcome.request_id)
                outcome.status, outcome.error_type = 500, "internal_error"
                return error_response(PeriluneError("Internal error; the request id is in x-request-id."),
                                      dialect, outcome.request_id)
            finally:
                p = ctx.principal
                recorded = p is not None and auth == "key" and bool(outcome.model_requested)
                if outcome.latency_ms is None:
                    outcome.latency_ms = (time.perf_counter() - outcome.started) * 1000.0
                app_id = request.headers.get("X-App-ID") or "unknown"
                if outcome.ticket is not None and services.accountant.limiter.remote:
                    # a Redis round trip: settle (then record) after the response, not before it
                    services.spawn(_settle_and_record(services, outcome, p if recorded else None, app_id))
                else:
                    if outcome.ticket is not None:
                        await _settle(services, outcome)
                    if recorded and p is not None:
                        services.recorder.record(outcome, p.key_id, p.account_id, app_id)

        handler.__name__ = fn.__name__
        return handler

    return wrap
