"""One request, one owner: admission, attempts, the relay, settlement and the usage record.

A :class:`Lifecycle` is created for every request by the route wrapper (:func:`perilune.api.common
.endpoint`) and finished exactly once by it, whatever happened::

    lc = Lifecycle(...)                       # immutable inputs: who, which dialect and endpoint
    resp = await lc.serve(call, pick)         # reserve per model -> pipeline attempts -> one relay
    ...                                       # success, upstream error, hang-up (any exception type),
    await lc.finish()                         # shutdown, Redis or database fault: settle | release,
                                              # then exactly one usage record

Nothing else settles or records a request. The reservation belongs to the attempts of one model; a
fallback to another model releases it and reserves again at that model's price; the charge is the
served attempt's, computed in process (never above the reservation), so the record carries it even
when Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from perilune.accounting import estimate
from perilune.accounting.billing import Billing, Charge, Reservation
from perilune.accounting.catalog import ModelInfo
from perilune.accounting.pricing import cost_of
from perilune.errors import PeriluneError, ServerShuttingDown
from perilune.gateway.pipeline import ROUTE_HEADER, Call, Opened, Pipeline, route_header
from perilune.gateway.relay import Encoder, PickEncoder, Served, Tally, relay_stream
from perilune.schema.canonical import JSON, Attempt, Usage, UsageEvent
from perilune.tokens import count_tokens

if TYPE_CHECKING:
    from perilune.gateway.auth import Principal

log = logging.getLogger("perilune.lifecycle")

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}


class _EventStream(web.StreamResponse):
    """An SSE response whose headers leave with its first bytes (one send, not two): it is prepared only
    once the first items are there to go."""

    _send_headers_immediately = False


class Streams:
    """The generation requests in flight in this process (streams above all), so that shutdown can let
    them finish for a grace period and then end them properly."""

    def __init__(self) -> None:
        self.open: set[Lifecycle] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def add(self, lc: Lifecycle) -> None:
        self.open.add(lc)
        self.idle.clear()

    def discard(self, lc: Lifecycle) -> None:
        self.open.discard(lc)
        if not self.open:
            self.idle.set()

    async def close(self, grace_s: float) -> None:
        """Let requests in flight finish for ``grace_s``; then end each: a stream with an error event in
        its dialect, a request still waiting for its upstream with a 503 ``server_shutdown``."""
        if self.open:
            log.info("waiting up to %.0f s for %d requests in flight", grace_s, len(self.open))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), grace_s)
        if self.open:
            log.warning("ending %d requests still in flight after the grace period", len(self.open))
            for lc in list(self.open):
                lc.stop_for_shutdown()
            try:
                await asyncio.wait_for(self.idle.wait(), 5.0)
            except TimeoutError:
                log.error("%d streams did not end after shutdown was signalled", len(self.open))


class Lifecycle:
    __slots__ = (
        "_done",
        "_res_seq",
        "_task",
        "alias",
        "app_id",
        "attempts",
        "billing",
        "capture",
        "dialect",
        "endpoint",
        "error_type",
        "extra",
        "model_requested",
        "opened",
        "payload_request",
        "payload_response",
        "pipeline",
        "principal",
        "recorder",
        "records",
        "request",
        "request_id",
        "reservation",
        "served",
        "shutting_down",
        "started",
        "status",
        "stream",
        "streams",
        "tally",
    )

    def __init__(self, request: web.Request, *, request_id: str, dialect: str, endpoint: str, billing: Billing,
                 pipeline: Pipeline, recorder: Any, streams: Streams, records: bool) -> None:
        self.request = request
        self.request_id = request_id
        self.dialect = dialect
        self.endpoint = endpoint
        self.billing = billing
        self.pipeline = pipeline
        self.recorder = recorder
        self.streams = streams
        self.records = records  # a generation endpoint: every authenticated request leaves a record
        self.started = time.perf_counter()
        self.app_id = request.headers.get("X-App-ID") or "unknown"
        self.principal: Principal | None = None
        self.served = Served(request_id, time.time(), endpoint)
        self.attempts: list[Attempt] = []
        self.reservation: Reservation | None = None
        self.opened: Opened | None = None
        self.tally = Tally()
        self.model_requested = ""
        self.alias: str | None = None
        self.stream = False
        self.capture = False
        self.payload_request: Any = None
        self.payload_response: Any = None
        self.extra: JSON | None = None
        self.status = 200
        self.error_type: str | None = None
        self.shutting_down = False
        self._res_seq = 0
        self._done = False
        self._task: asyncio.Task[Any] | None = None

    # ---- inputs the handler knows after parsing ----
    def observe(self, asked: bool | None, raw: Any) -> None:
        """``"observability": true``: keep the request (and the response) with the usage record."""
        if asked:
            self.capture, self.payload_request = True, raw

    # ---- serving ----
    async def serve(self, call: Call, pick: PickEncoder, headers: Mapping[str, str] | None = None
                    ) -> web.StreamResponse:
        self.model_requested = self.model_requested or call.model
        self.stream = call.stream
        self.served.prompt_tokens = call.prompt_tokens
        self._task = asyncio.current_task()
        self.streams.add(self)
        try:
            return await self._serve(call, pick, headers)
        finally:
            self.streams.discard(self)

    async def _serve(self, call: Call, pick: PickEncoder, headers: Mapping[str, str] | None
                     ) -> web.StreamResponse:
        canonical = pick(False)  # the encoder of canonical items; it may take chunks as their upstream sent them
        call.relay_tail = canonical.passthrough
        opened = await self.pipeline.open(call, lambda m: self._reserve(call, m), self.attempts, self.started,
                                          self.request.headers)
        self.opened = opened
        d, s = opened.deployment, self.served
        s.provider, s.model, s.upstream_model, s.native = d.provider.name, d.model.id, d.upstream_model, opened.native
        s.ttft_ms, s.route = opened.ttft_ms, self.attempts
        encoder = pick(True) if opened.native else canonical
        self.alias = opened.alias
        extra = {**(headers or {}), ROUTE_HEADER: route_header(self.attempts)}
        if opened.result is not None:
            result = opened.result
            if call.billed:
                usage = call.usage(result) if call.usage is not None else result.usage
                self.account(usage or Usage(input_tokens=call.prompt_tokens,
                                            output_tokens=_output_estimate(result.body, opened.native),
                                            estimated=True))
            body = encoder.body(result.body, s)
            if self.capture:  # the response as the client got it
                self.payload_response = orjson.loads(body) if encoder.body_type == "application/json" \
                    else body.decode("utf-8", "replace")
            return web.Response(body=body, headers={"Content-Type": encoder.body_type,
                                                    "x-request-id": self.request_id, **extra,
                                                    **encoder.headers(s)})
        return await self._stream(opened, encoder, extra)

    async def _reserve(self, call: Call, model: ModelInfo) -> Reservation | None:
        if not call.billed:
            return None
        if self.reservation is not None:
            if self.reservation.model.id == model.id:
                return self.reservation
            await self.billing.settle(self.reservation, None, Charge(0, 0))  # a fallback re-prices
            self.reservation = None
        self._res_seq += 1
        rid = self.request_id if self._res_seq == 1 else f"{self.request_id}.{self._res_seq}"
        self.reservation = await self.billing.reserve(
            self.principal, model, reservation_id=rid, prompt_tokens=call.prompt_tokens,
            max_output=call.max_output, n=call.n, unit_usd=call.unit_usd, output_param=call.output_param,
            generates=call.generates)
        return self.reservation

    def account(self, usage: Usage) -> None:
        """The usage is known (or has grown, while a stream runs): cost and charge follow."""
        s = self.served
        if self.opened is None or s.usage is usage:
            return
        s.usage = usage
        if self.opened.decoder is not None:
            s.upstream_usage = self.opened.decoder.upstream_usage
        s.cost = cost_of(usage, self.opened.deployment.price)  # the serving provider's price for the model
        charge = self.billing.charge(self.reservation, usage, s.cost)
        s.charged_pusd, s.free_tokens = charge.charged_pusd, charge.free_tokens
        s.latency_ms = (time.perf_counter() - self.started) * 1000.0

    def _partial_usage(self) -> Usage:
        decoder = self.opened.decoder if self.opened is not None else None
        if decoder is not None and decoder.usage is not None:
            return decoder.usage  # the upstream's own count: no estimate needed
        out = self.tally.output_tokens()
        if decoder is not None:
            interim = decoder.interim_usage(out)
            if interim is not None:
                return interim
        return Usage(input_tokens=self.served.prompt_tokens, output_tokens=out, estimated=True)

    async def _stream(self, opened: Opened, encoder: Encoder, extra: dict[str, str]) -> web.StreamResponse:
        resp = _EventStream(status=200, headers={**SSE_HEADERS, "x-request-id": self.request_id, **extra})
        decoder = opened.decoder
        try:
            await resp.prepare(self.request)
            held = await relay_stream(opened.batches(), encoder, self.served, resp.write, self.tally,
                                      lambda: self.account(self._partial_usage()),
                                      lambda: decoder is not None and decoder.usage is not None
                                      and decoder.usage is not self.served.usage,
                                      lambda: decoder is not None and decoder.done)
            self.account(self._partial_usage())
            await resp.write_eof(held + encoder.finish(self.served))  # one write: the last items, the end
        except PeriluneError as e:  # the upstream failed mid-stream: an error event ends the stream
            self.account(self._partial_usage())
            self.status, self.error_type = e.status_code, e.kind
            await self._try_write(resp, encoder.error(e, self.served))
        except asyncio.CancelledError:
            self.account(self._partial_usage())
            if not self.shutting_down:  # the client went away: what was generated is still paid for
                self.status, self.error_type = 499, "client_closed_request"
                raise
            err = ServerShuttingDown("The server is shutting down; this stream was ended before it completed.")
            self.status, self.error_type = err.status_code, err.kind
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
            await self._try_write(resp, encoder.error(err, self.served))
        except Exception:
            self.account(self._partial_usage())
            if not self._client_gone():
                raise  # a bug: the route wrapper logs it and records a 500
            self.status, self.error_type = 499, "client_closed_request"
        finally:
            await opened.close()
            if self.capture:
                cap = encoder.capture()
                self.payload_response = cap if cap is not None else self.payload_response
        return resp

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def _try_write(self, resp: web.StreamResponse, data: bytes) -> None:
        if self._client_gone():
            return
        try:
            await resp.write(data)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # gone meanwhile
            pass

    def stop_for_shutdown(self) -> None:
        self.shutting_down = True
        if self._task is not None and not self._task.done():
            self._task.cancel("server shutdown")

    # ---- the end ----
    def fail(self, e: PeriluneError) -> None:
        self.status, self.error_type = e.status_code, e.kind
        if self.capture and self.payload_response is None:
            self.payload_response = e.openai_body()

    async def finish(self) -> None:
        """Settle or release, then record: exactly once, never raising."""
        if self._done:
            return
        self._done = True
        s = self.served
        if s.latency_ms is None:
            s.latency_ms = (time.perf_counter() - self.started) * 1000.0
        if self.reservation is not None:
            charge = Charge(s.charged_pusd or 0, s.free_tokens)
            await self.billing.settle(self.reservation, s.usage, charge)
        if self.records and self.principal is not None:
            self.recorder.record(self.event())

    def event(self) -> UsageEvent:
        s, p = self.served, self.principal
        last = self.attempts[-1] if self.attempts else None  # nothing served: name what failed last
        charged = s.charged_pusd if s.charged_pusd is not None else (0 if self.reservation else None)
        return UsageEvent(
            request_id=self.request_id, started_wall=s.started_wall, dialect=self.dialect, endpoint=self.endpoint,
            model_requested=self.model_requested, model_served=s.model or (last.model if last else ""),
            provider=s.provider or (last.provider if last else ""), status=self.status,
            error_type=self.error_type, usage=s.usage, cost=s.cost, ttft_ms=s.ttft_ms, latency_ms=s.latency_ms,
            stream=self.stream, route=tuple(self.attempts), charged_pusd=charged,
            free_tokens=s.free_tokens if s.usage is not None else None,
            key_id=p.key_id if p else None, account_id=p.account_id if p else None, app=self.app_id,
            alias=self.alias, capture=self.capture, payload_request=self.payload_request,
            payload_response=self.payload_response, extra=self.extra)


def _output_estimate(body: JSON, native: bool) -> int:
    if not native:
        return estimate.chat_output_tokens(body)
    return sum(count_tokens(str(b.get("text") or b.get("thinking") or ""))
               for b in body.get("content") or () if isinstance(b, dict))
