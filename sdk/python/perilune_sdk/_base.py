"""What the sync and the async client share: configuration, headers, the retry policy, and the
accumulators that turn a stream's events into typed items plus the final usage and cost."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from perilune_sdk import _convert
from perilune_sdk._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    PeriluneError,
    error_from,
)
from perilune_sdk._version import __version__
from perilune_sdk.types import (
    ChatCompletionChunk,
    CompletionChoice,
    Message,
    MessageStreamEvent,
    MessageUsage,
    Response,
    ResponseStreamEvent,
    Usage,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8787/v1"
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_RETRIES = 2
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is raised to the caller instead of slept through
RETRY_ANY_METHOD = frozenset({429, 503})  # the gateway refused before doing (or billing) anything
RETRY_IDEMPOTENT = frozenset({500, 502, 504})  # may have run: only GET/DELETE are repeated
IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    api_key: str
    base_url: str
    app_id: str | None
    timeout: float
    max_retries: int
    headers: Mapping[str, str] = field(default_factory=dict)


def make_config(api_key: str | None, base_url: str | None, app_id: str | None, timeout: float | None,
                max_retries: int | None, headers: Mapping[str, str] | None) -> Config:
    key = api_key or os.environ.get("PERILUNE_API_KEY")
    if not key:
        raise PeriluneError("No API key: pass api_key=... or set PERILUNE_API_KEY.")
    url = base_url or os.environ.get("PERILUNE_BASE_URL") or DEFAULT_BASE_URL
    return Config(key, url.rstrip("/"), app_id, DEFAULT_TIMEOUT_S if timeout is None else timeout,
                  DEFAULT_MAX_RETRIES if max_retries is None else max_retries, dict(headers or {}))


def request_headers(cfg: Config, opts: Mapping[str, Any], *, stream: bool) -> dict[str, str]:
    h = {"Authorization": f"Bearer {cfg.api_key}", "User-Agent": f"perilune-sdk-python/{__version__}",
         "Accept": "text/event-stream" if stream else "application/json"}
    app_id = opts.get("app_id") or cfg.app_id
    if app_id:
        h["X-App-ID"] = app_id
    h.update(cfg.headers)
    h.update(opts.get("extra_headers") or {})
    return h


def query_string(query: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (query or {}).items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, list | tuple):
            out[k] = ",".join(str(x) for x in v)
        else:
            out[k] = str(v)
    return out


def seg(value: str) -> str:
    """One path segment (a model, record or response id), percent-encoded."""
    return quote(value, safe="")


def retry_delay(attempt: int, retry_after: float | None) -> float | None:
    """Seconds before retry number ``attempt`` (0-based), or None to give up on a too-long Retry-After."""
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER_S else None
    return min(8.0, 0.5 * 2.0 ** attempt) * random.uniform(0.75, 1.0)


def retryable_status(method: str, status: int) -> bool:
    return status in RETRY_ANY_METHOD or (method in IDEMPOTENT and status in RETRY_IDEMPOTENT)


def transport_error(method: str, e: httpx.TransportError) -> tuple[PeriluneError, bool]:
    """The SDK's error for an httpx failure, and whether repeating the request is safe."""
    if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout):  # nothing was sent
        return APIConnectionError(f"Could not connect to the gateway: {e}"), True
    if isinstance(e, httpx.TimeoutException):
        return APITimeoutError(f"The gateway did not answer in time: {e}"), method in IDEMPOTENT
    return APIConnectionError(f"Connection to the gateway failed: {e}"), method in IDEMPOTENT


def parse_json(resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content)
    except ValueError:
        raise APIError(f"The gateway answered HTTP {resp.status_code} with a body that is not JSON.",
                       status=resp.status_code, request_id=resp.headers.get("x-request-id"),
                       body=resp.text) from None


def error_for(resp: httpx.Response, body: Any) -> APIError:
    return error_from(resp.status_code, resp.headers, body)


_STREAM_STATUS = {"rate_limit_error": 429, "timeout_error": 504, "upstream_error": 502,
                  "overloaded_error": 503, "invalid_request_error": 400, "authentication_error": 401}


def stream_error(obj: Mapping[str, Any]) -> APIError:
    """A failure reported inside a stream (after HTTP 200) as its typed error."""
    err = obj.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    return error_from(_STREAM_STATUS.get(str(kind), 502), {}, dict(obj))


# ---- stream accumulators: typed items out, final usage and cost kept --------------------------------

class Accumulator(Generic[T]):
    """Feeds on (event, data) pairs; returns the typed item to yield, or None for control events."""

    done = False
    request_id: str | None = None

    def feed(self, event: str | None, data: str) -> T | None:
        raise NotImplementedError


class ChatAccumulator(Accumulator[ChatCompletionChunk]):
    """Chat and router streams. ``usage`` (with cost and timings) arrives in the last chunk."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.provider: str | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.chunks = 0
        self._text: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, event: str | None, data: str) -> ChatCompletionChunk | None:
        if data == "[DONE]":
            self.done = True
            return None
        obj = json.loads(data)
        if "error" in obj and "choices" not in obj:
            raise stream_error(obj)
        chunk = _convert.load(ChatCompletionChunk, obj)
        self.chunks += 1
        self.provider = chunk.provider or self.provider
        self.model = chunk.model or self.model
        self.id = chunk.id or self.id
        if chunk.usage is not None:
            self.usage = chunk.usage
        for c in chunk.choices:
            if c.index == 0 and c.delta.content:
                self._text.append(c.delta.content)
        return chunk


class CompletionAccumulator(Accumulator[CompletionChoice]):
    """Legacy completion streams: yields each chunk's choices; usage from the last chunk."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.provider: str | None = None
        self._text: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, event: str | None, data: str) -> CompletionChoice | None:
        if data == "[DONE]":
            self.done = True
            return None
        obj = json.loads(data)
        if "error" in obj and "choices" not in obj:
            raise stream_error(obj)
        self.provider = obj.get("provider") or self.provider
        if isinstance(obj.get("usage"), dict):
            self.usage = _convert.load(Usage, obj["usage"])
        choices = [_convert.load(CompletionChoice, c) for c in obj.get("choices") or ()]
        for c in choices:
            if c.index == 0:
                self._text.append(c.text)
        return choices[0] if choices else None


class MessageAccumulator(Accumulator[MessageStreamEvent]):
    """Anthropic-dialect streams; ``usage`` (with cost) comes with ``message_delta``."""

    def __init__(self) -> None:
        self.message: Message | None = None
        self.usage: MessageUsage | None = None
        self.stop_reason: str | None = None
        self._text: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def provider(self) -> str | None:
        return self.message.provider if self.message else None

    def feed(self, event: str | None, data: str) -> MessageStreamEvent | None:
        obj = json.loads(data)
        kind = obj.get("type") or event
        if kind == "error":
            raise stream_error(obj)
        ev = _convert.load(MessageStreamEvent, obj)
        if ev.type == "message_start" and ev.message is not None:
            self.message = ev.message
        elif ev.type == "content_block_delta" and ev.delta and ev.delta.get("type") == "text_delta":
            self._text.append(str(ev.delta.get("text", "")))
        elif ev.type == "message_delta":
            self.usage = ev.usage or self.usage
            if ev.delta:
                self.stop_reason = ev.delta.get("stop_reason") or self.stop_reason
        elif ev.type == "message_stop":
            self.done = True
        return ev


class ResponseAccumulator(Accumulator[ResponseStreamEvent]):
    """Responses API streams; the final ``response`` (with usage and cost) comes with response.completed."""

    def __init__(self) -> None:
        self.response: Response | None = None
        self._text: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, event: str | None, data: str) -> ResponseStreamEvent | None:
        if data == "[DONE]":
            self.done = True
            return None
        obj = json.loads(data)
        kind = obj.get("type") or event
        if kind == "error" or (kind is None and "error" in obj):
            raise stream_error(obj if "error" in obj else {"error": obj})
        ev = _convert.load(ResponseStreamEvent, obj)
        if ev.type == "response.output_text.delta" and isinstance(ev.delta, str):
            self._text.append(ev.delta)
        if ev.response is not None:
            self.response = ev.response
        if ev.type in ("response.completed", "response.failed", "response.incomplete"):
            self.done = True
        return ev
