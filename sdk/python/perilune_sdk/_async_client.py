"""The asynchronous client: ``AsyncPerilune()``, the same surface as ``Perilune`` with ``await``."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from perilune_sdk import _base as b
from perilune_sdk import _convert
from perilune_sdk._errors import PeriluneError
from perilune_sdk._params import (
    AlertParams,
    ChatCreateParams,
    CompletionCreateParams,
    CountTokensParams,
    EmbeddingCreateParams,
    FeedbackParams,
    MessageCreateParams,
    RequestOptions,
    ResponseCreateParams,
    RouterParams,
    split,
)
from perilune_sdk._streams import (
    AsyncChatStream,
    AsyncCompletionStream,
    AsyncMessageStream,
    AsyncResponseStream,
    AsyncStream,
)
from perilune_sdk.types import (
    Balance,
    ChatCompletion,
    Completion,
    Embeddings,
    Feedback,
    Message,
    MessageTokenCount,
    ModelInfo,
    ModelProviders,
    ProviderInfo,
    Response,
    RouterDecision,
    RouterProfiles,
    UsageAggregate,
    UsagePage,
    UsageRecord,
)

T = TypeVar("T")
St = TypeVar("St", bound=AsyncStream[Any])


class AsyncPerilune:
    """A client of a perilune gateway.

    ``api_key`` defaults to ``$PERILUNE_API_KEY``, ``base_url`` to ``$PERILUNE_BASE_URL`` or
    ``http://127.0.0.1:8787/v1``. ``app_id`` is sent as ``X-App-ID`` on every call (a call's own
    ``app_id=`` wins). Failures that the gateway refused before doing anything (429, 503, no
    connection) are retried up to ``max_retries`` times, honouring ``Retry-After``; GET and DELETE
    also on 500/502/504 and timeouts.
    """

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, app_id: str | None = None,
                 timeout: float | None = None, max_retries: int | None = None,
                 default_headers: Mapping[str, str] | None = None,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self._config = b.make_config(api_key, base_url, app_id, timeout, max_retries, default_headers)
        self._http = http_client or httpx.AsyncClient(timeout=self._config.timeout)
        self._owns_http = http_client is None
        self.chat = Chat(self)
        self.completions = Completions(self)
        self.embeddings = EmbeddingsAPI(self)
        self.messages = Messages(self)
        self.responses = Responses(self)
        self.models = Models(self)
        self.providers = Providers(self)
        self.router = Router(self)
        self.balance = BalanceAPI(self)
        self.usage = UsageAPI(self)
        self.feedback = FeedbackAPI(self)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def app_id(self) -> str | None:
        return self._config.app_id

    def with_options(self, *, app_id: str | None = None, timeout: float | None = None,
                     max_retries: int | None = None) -> AsyncPerilune:
        """A client with other defaults, sharing this one's connection pool."""
        c = self._config
        return AsyncPerilune(api_key=c.api_key, base_url=c.base_url, app_id=app_id or c.app_id,
                        timeout=c.timeout if timeout is None else timeout,
                        max_retries=c.max_retries if max_retries is None else max_retries,
                        default_headers=c.headers, http_client=self._http)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPerilune:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ---- transport ---------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, body: Mapping[str, Any] | None, query: Mapping[str, Any] | None,
                    opts: Mapping[str, Any], stream: bool) -> httpx.Response:
        cfg = self._config
        request = self._http.build_request(
            method, cfg.base_url + path, json=body, params=b.query_string(query),
            headers=b.request_headers(cfg, opts, stream=stream), timeout=opts.get("timeout", cfg.timeout))
        retries = opts.get("max_retries", cfg.max_retries)
        attempt = 0
        while True:
            try:
                resp = await self._http.send(request, stream=stream)
            except httpx.TransportError as e:
                err, safe = b.transport_error(method, e)
                delay = b.retry_delay(attempt, None) if safe and attempt < retries else None
                if delay is None:
                    raise err from e
            else:
                if resp.status_code < 400:
                    return resp
                await resp.aread()
                await resp.aclose()
                api_err = b.error_for(resp, b.parse_json(resp))
                delay = (b.retry_delay(attempt, api_err.retry_after)
                         if attempt < retries and b.retryable_status(method, resp.status_code) else None)
                if delay is None:
                    raise api_err
            await asyncio.sleep(delay)
            attempt += 1

    async def _json(self, method: str, path: str, opts: Mapping[str, Any], body: Mapping[str, Any] | None = None,
                    query: Mapping[str, Any] | None = None) -> Any:
        resp = await self._send(method, path, body, query, opts, stream=False)
        return b.parse_json(resp)

    async def _load(self, cls: type[T], method: str, path: str, opts: Mapping[str, Any],
                    body: Mapping[str, Any] | None = None, query: Mapping[str, Any] | None = None) -> T:
        return _convert.load(cls, await self._json(method, path, opts, body, query))

    async def _stream(self, kind: type[St], acc: b.Accumulator[Any], path: str, body: Mapping[str, Any],
                      opts: Mapping[str, Any]) -> St:
        return kind(await self._send("POST", path, body, None, opts, stream=True), acc)


class _Resource:
    def __init__(self, client: AsyncPerilune) -> None:
        self._c = client


def _list_of(cls: type[T], data: Any, *keys: str) -> list[T]:
    """A list answered as a top-level array or inside an envelope under one of ``keys``."""
    if isinstance(data, dict):
        for k in keys:
            if isinstance(data.get(k), list):
                data = data[k]
                break
    if not isinstance(data, list):
        raise PeriluneError(f"expected a list of {cls.__name__}, got {type(data).__name__}")
    return [_convert.load(cls, x, f"$[{i}]") for i, x in enumerate(data)]


class Chat(_Resource):
    async def create(self, **params: Unpack[ChatCreateParams]) -> ChatCompletion:
        """``POST /v1/chat/completions``; usage carries cost (``Decimal`` USD) and timings."""
        body, opts = split(params)
        return await self._c._load(ChatCompletion, "POST", "/chat/completions", opts, body)

    async def stream(self, **params: Unpack[ChatCreateParams]) -> AsyncChatStream:
        """Streamed chat: iterate for chunks; ``.usage`` holds the final usage and cost."""
        body, opts = split(params)
        body.update(stream=True, stream_options={"include_usage": True})
        return await self._c._stream(AsyncChatStream, b.ChatAccumulator(), "/chat/completions", body, opts)


class Completions(_Resource):
    async def create(self, **params: Unpack[CompletionCreateParams]) -> Completion:
        body, opts = split(params)
        return await self._c._load(Completion, "POST", "/completions", opts, body)

    async def stream(self, **params: Unpack[CompletionCreateParams]) -> AsyncCompletionStream:
        body, opts = split(params)
        body.update(stream=True, stream_options={"include_usage": True})
        return await self._c._stream(AsyncCompletionStream, b.CompletionAccumulator(), "/completions", body, opts)


class EmbeddingsAPI(_Resource):
    async def create(self, **params: Unpack[EmbeddingCreateParams]) -> Embeddings:
        body, opts = split(params)
        return await self._c._load(Embeddings, "POST", "/embeddings", opts, body)


class Messages(_Resource):
    """The Anthropic Messages dialect, reaching any model the gateway serves."""

    async def create(self, **params: Unpack[MessageCreateParams]) -> Message:
        body, opts = split(params)
        return await self._c._load(Message, "POST", "/messages", opts, body)

    async def stream(self, **params: Unpack[MessageCreateParams]) -> AsyncMessageStream:
        body, opts = split(params)
        body["stream"] = True
        return await self._c._stream(AsyncMessageStream, b.MessageAccumulator(), "/messages", body, opts)

    async def count_tokens(self, **params: Unpack[CountTokensParams]) -> MessageTokenCount:
        body, opts = split(params)
        return await self._c._load(MessageTokenCount, "POST", "/messages/count_tokens", opts, body)


class Responses(_Resource):
    """The OpenAI Responses API."""

    async def create(self, **params: Unpack[ResponseCreateParams]) -> Response:
        body, opts = split(params)
        return await self._c._load(Response, "POST", "/responses", opts, body)

    async def stream(self, **params: Unpack[ResponseCreateParams]) -> AsyncResponseStream:
        body, opts = split(params)
        body["stream"] = True
        return await self._c._stream(AsyncResponseStream, b.ResponseAccumulator(), "/responses", body, opts)

    async def retrieve(self, response_id: str, **opts: Unpack[RequestOptions]) -> Response:
        return await self._c._load(Response, "GET", f"/responses/{b.seg(response_id)}", opts)

    async def delete(self, response_id: str, **opts: Unpack[RequestOptions]) -> dict[str, Any]:
        out: dict[str, Any] = await self._c._json("DELETE", f"/responses/{b.seg(response_id)}", opts)
        return out

    async def input_items(self, response_id: str, **opts: Unpack[RequestOptions]) -> list[dict[str, Any]]:
        data = await self._c._json("GET", f"/responses/{b.seg(response_id)}/input_items", opts)
        items = data.get("data") if isinstance(data, dict) else data
        return list(items) if isinstance(items, list) else []


class Models(_Resource):
    async def list(self, *, input: Sequence[str] | None = None, output: Sequence[str] | None = None,
                   **opts: Unpack[RequestOptions]) -> builtins.list[ModelInfo]:
        """The catalog; ``input=["text", "image"]`` / ``output=["embedding"]`` keep models supporting
        all the listed modalities."""
        data = await self._c._json("GET", "/models", opts, query={"input": input, "output": output})
        return _list_of(ModelInfo, data, "data")

    async def retrieve(self, model: str, **opts: Unpack[RequestOptions]) -> ModelInfo:
        return await self._c._load(ModelInfo, "GET", f"/models/{b.seg(model)}", opts)


class Providers(_Resource):
    async def list(self, **opts: Unpack[RequestOptions]) -> builtins.list[ProviderInfo]:
        """Every configured provider with the models it serves."""
        return _list_of(ProviderInfo, await self._c._json("GET", "/providers", opts), "data", "providers")

    async def for_model(self, model: str, **opts: Unpack[RequestOptions]) -> ModelProviders:
        """The providers serving ``model``, each with its status and live latency, TTFT and error rate."""
        return await self._c._load(ModelProviders, "GET", "/providers", opts, query={"model": model})


class Router(_Resource):
    """The semantic model router (``POST /v1/router``)."""

    async def decide(self, **params: Unpack[RouterParams]) -> RouterDecision:
        """Only the decision (``execute: false``): the chosen model and every candidate's score."""
        body, opts = split(params)
        body["execute"] = False
        return await self._c._load(RouterDecision, "POST", "/router", opts, body)

    async def create(self, **params: Unpack[RouterParams]) -> ChatCompletion:
        """Route and run: a chat completion from the chosen model, with the decision in ``.router``."""
        body, opts = split(params)
        body["execute"] = True
        return await self._c._load(ChatCompletion, "POST", "/router", opts, body)

    async def stream(self, **params: Unpack[RouterParams]) -> AsyncChatStream:
        body, opts = split(params)
        body.update(execute=True, stream=True, stream_options={"include_usage": True})
        return await self._c._stream(AsyncChatStream, b.ChatAccumulator(), "/router", body, opts)

    async def profiles(self, **opts: Unpack[RequestOptions]) -> RouterProfiles:
        """Every profiled model (quality per cluster, mean cost), the embedder and the provenance."""
        return await self._c._load(RouterProfiles, "GET", "/router/profiles", opts)


class BalanceAPI(_Resource):
    async def retrieve(self, **opts: Unpack[RequestOptions]) -> Balance:
        """The key's account: balance, spend today and this month, alert settings."""
        return await self._c._load(Balance, "GET", "/balance", opts)

    async def set_alerts(self, **params: Unpack[AlertParams]) -> Balance:
        """Low-balance alert thresholds (USD, as decimal strings) and the webhook to call."""
        body, opts = split(params)
        return await self._c._load(Balance, "POST", "/balance/alerts", opts, body)


class UsageRecords(_Resource):
    async def list(self, *, from_: str | float | None = None, to: str | float | None = None, app: str | None = None,
                   model: str | None = None, provider: str | None = None, status: str | int | None = None,
                   key_id: str | None = None, account_id: str | None = None, limit: int | None = None,
                   cursor: str | None = None, **opts: Unpack[RequestOptions]) -> UsagePage:
        """One page of usage records, newest first; ``next_cursor`` fetches the next."""
        query = {"from": from_, "to": to, "app": app, "model": model, "provider": provider, "status": status,
                 "key_id": key_id, "account_id": account_id, "limit": limit, "cursor": cursor}
        return await self._c._load(UsagePage, "GET", "/usage/records", opts, query=query)

    async def iter(self, *, from_: str | float | None = None, to: str | float | None = None, app: str | None = None,
                   model: str | None = None, provider: str | None = None, status: str | int | None = None,
                   key_id: str | None = None, account_id: str | None = None, page_size: int | None = None,
                   **opts: Unpack[RequestOptions]) -> AsyncIterator[UsageRecord]:
        """Every matching record, newest first, following the cursor page by page."""
        cursor: str | None = None
        while True:
            page = await self.list(from_=from_, to=to, app=app, model=model, provider=provider, status=status,
                                   key_id=key_id, account_id=account_id, limit=page_size, cursor=cursor, **opts)
            for record in page.data:
                yield record
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    async def retrieve(self, record_id: str, **opts: Unpack[RequestOptions]) -> UsageRecord:
        """One record, with its stored payload when the request was sent with ``observability=True``."""
        return await self._c._load(UsageRecord, "GET", f"/usage/records/{b.seg(record_id)}", opts)


class UsageAPI(_Resource):
    def __init__(self, client: AsyncPerilune) -> None:
        super().__init__(client)
        self.records = UsageRecords(client)

    async def aggregate(self, *, group_by: str | Sequence[str] | None = None, from_: str | float | None = None,
                        to: str | float | None = None, app: str | None = None, model: str | None = None,
                        provider: str | None = None, status: str | int | None = None, key_id: str | None = None,
                        account_id: str | None = None, percentiles: bool | None = None,
                        **opts: Unpack[RequestOptions]) -> UsageAggregate:
        """Requests, errors, tokens, cost and latency/TTFT percentiles, grouped by ``app``, ``model``,
        ``provider``, ``key``, ``account``, ``hour`` or ``day`` (at most two)."""
        query = {"group_by": group_by, "from": from_, "to": to, "app": app, "model": model, "provider": provider,
                 "status": status, "key_id": key_id, "account_id": account_id, "percentiles": percentiles}
        return await self._c._load(UsageAggregate, "GET", "/usage/aggregate", opts, query=query)


class FeedbackAPI(_Resource):
    async def create(self, **params: Unpack[FeedbackParams]) -> Feedback:
        """Attach a quality score in [0, 1] to a logged request (used to rebuild router profiles)."""
        body, opts = split(params)
        return await self._c._load(Feedback, "POST", "/feedback", opts, body)
