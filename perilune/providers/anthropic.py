"""The native Anthropic adapter: the Messages API (https://api.anthropic.com/v1/messages).

Two ways through it:

- ``CHAT``: an OpenAI-shaped chat request is translated (:mod:`perilune.providers.anthropic_request`),
  and the Anthropic message or event stream is translated back into a chat.completion or
  chat.completion.chunk mappings, so OpenAI-dialect clients reach Claude.
- ``MESSAGES`` / ``COUNT_TOKENS``: the native passthrough used by perilune's own Anthropic dialect
  (``/v1/messages``): the client's Anthropic request goes upstream as-is (cache_control, thinking
  signatures, documents, metadata... survive) and the answer comes back as-is; only usage is read.

Usage is Anthropic's: ``input_tokens`` excludes cache reads and writes, exactly perilune's canonical
meaning, so the mapping is one-to-one (``cache_read_input_tokens`` -> cache_read,
``cache_creation_input_tokens`` -> cache_write). Streams: usage is only final at ``message_delta``, so
a decoder reports ``usage`` from then on (a stream cut before it is truncated, not complete).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from perilune._http import status_error
from perilune._sse import SSEEvent
from perilune.errors import Unsupported, UpstreamError
from perilune.providers.anthropic_request import to_anthropic
from perilune.providers.base import CHAT, EventDecoder, Provider, Result, UpstreamRequest, load_object
from perilune.schema.anthropic import PERILUNE_FIELDS
from perilune.schema.canonical import JSON, Usage

# Native operations: only this adapter supports them (see perilune.gateway.pipeline.Native).
MESSAGES = "anthropic.messages"
COUNT_TOKENS = "anthropic.count_tokens"

ANTHROPIC_VERSION = "2023-06-01"
OWN_FIELDS = PERILUNE_FIELDS  # perilune's request fields, never sent upstream

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
# Anthropic error types -> the HTTP status they stand for (docs: /en/api/errors)
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


def usage_from(u: Mapping[str, Any]) -> Usage:
    """Anthropic usage -> canonical (same meaning of input_tokens; thinking tokens are output)."""
    details = u.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0),
        output_tokens=int(u.get("output_tokens") or 0),
        cache_read_tokens=int(u.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(u.get("cache_creation_input_tokens") or 0),
        reasoning_tokens=int(thinking or 0),
    )


def openai_usage(u: Usage) -> JSON:
    out: JSON = {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.output_tokens,
                 "total_tokens": u.total_tokens,
                 "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens}}
    if u.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return out


def _error_parts(obj: Any) -> tuple[str, str]:
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("type") or "api_error"), str(err.get("message") or "")
    return "api_error", str(obj)[:300]


def stream_error(name: str, obj: Any) -> UpstreamError:
    """An ``event: error`` inside a stream, as the perilune error its type stands for."""
    etype, message = _error_parts(obj)
    return status_error(name, ERROR_STATUS.get(etype, 502), f"error in stream: {etype}: {message}")


def to_chat_completion(msg: JSON, name: str = "upstream") -> JSON:
    """An Anthropic message -> an OpenAI chat.completion (text joined, tool_use -> tool_calls,
    thinking -> reasoning_content)."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JSON] = []
    for block in msg.get("content") or ():
        if not isinstance(block, dict):
            continue
        typ = block.get("type")
        if typ == "text":
            texts.append(str(block.get("text", "")))
        elif typ == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif typ == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": orjson.dumps(block.get("input", {})).decode()}})
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    message["refusal"] = None
    finish = FINISH.get(str(msg.get("stop_reason")), "stop")
    out: JSON = {"id": msg.get("id"), "object": "chat.completion", "created": int(time.time()),
                 "model": msg.get("model"),
                 "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]}
    return out


class _Decoder(EventDecoder):
    """What both Anthropic stream decoders share: JSON, errors, usage bookkeeping."""

    __slots__ = ("_start_usage", "done", "name", "upstream_usage", "usage")

    def __init__(self, name: str) -> None:
        self.name = name
        self.usage: Usage | None = None
        self.upstream_usage: JSON | None = None  # not OpenAI-shaped: the relay builds usage itself
        self.done = False
        self._start_usage: JSON = {}

    def _event(self, event: SSEEvent) -> JSON:
        obj = load_object(event.data, self.name, "stream event")
        if event.event == "error" or obj.get("type") == "error":
            raise stream_error(self.name, obj)
        return obj

    def _on_message_start(self, obj: JSON) -> None:
        msg = obj.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("usage"), dict):
            self._start_usage = dict(msg["usage"])

    def _on_message_delta(self, obj: JSON) -> None:
        merged = dict(self._start_usage)
        delta_usage = obj.get("usage")
        if isinstance(delta_usage, dict):  # cumulative totals: present keys win
            merged.update({k: v for k, v in delta_usage.items() if v is not None})
        if "input_tokens" in merged or "output_tokens" in merged:  # no usage reported: unknown, not zero
            self.usage = usage_from(merged)

    def interim_usage(self, output_tokens: int) -> Usage:
        """Usage of a stream that failed before ``message_delta``: input as reported at
        ``message_start``, output estimated."""
        u = usage_from(self._start_usage)
        u.output_tokens, u.estimated = output_tokens, True
        return u


class AnthropicChatDecoder(_Decoder):
    """Anthropic SSE events -> OpenAI chat.completion.chunk mappings."""

    __slots__ = ("_base", "_role_sent", "_tools")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._base: JSON = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": ""}
        self._role_sent = False
        self._tools: dict[Any, int] = {}  # Anthropic block index -> OpenAI tool_calls index

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        if not self._role_sent:  # the first chunk carries the role (sent with the first token, for TTFT)
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._base, "choices": [choice]}

    def feed(self, event: SSEEvent) -> list[JSON]:
        obj = self._event(event)
        typ = obj.get("type")
        if typ == "content_block_delta":
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})] if delta.get("text") else []
            if dtype == "input_json_delta":
                k = self._tools.get(obj.get("index"))
                part = delta.get("partial_json")
                if k is None or not part:
                    return []
                return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": part}}]})]
            if dtype == "thinking_delta":
                text = delta.get("thinking")
                return [self._chunk({"reasoning_content": text})] if text else []
            return []  # signature_delta, citations_delta, unknown delta types
        if typ == "content_block_start":
            block = obj.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                k = len(self._tools)
                self._tools[obj.get("index")] = k
                call = {"index": k, "id": block.get("id"), "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            if btype == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            if btype == "thinking" and block.get("thinking"):
                return [self._chunk({"reasoning_content": block["thinking"]})]
            return []
        if typ == "message_start":
            self._on_message_start(obj)
            msg = obj.get("message") or {}
            self._base["id"], self._base["model"] = msg.get("id", ""), msg.get("model", "")
            return []
        if typ == "message_delta":
            self._on_message_delta(obj)
            reason = (obj.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH.get(str(reason), "stop"))] if reason else []
        if typ == "message_stop":
            self.done = True
        return []  # ping, content_block_stop, unknown event types (Anthropic's versioning policy)


class AnthropicNativeDecoder(_Decoder):
    """Anthropic SSE events passed through as Anthropic event mappings (native dialect), with usage read."""

    __slots__ = ()

    def feed(self, event: SSEEvent) -> list[JSON]:
        obj = self._event(event)
        typ = obj.get("type")
        if typ == "message_start":
            self._on_message_start(obj)
        elif typ == "message_delta":
            self._on_message_delta(obj)
        elif typ == "message_stop":
            self.done = True
        if not typ and event.event:
            obj["type"] = event.event
        return [obj]


class AnthropicAdapter:
    supports = frozenset({CHAT, MESSAGES, COUNT_TOKENS})

    def build(self, op: str, provider: Provider, model: str, req: JSON, *, stream: bool) -> UpstreamRequest:
        base = provider.base_url.rstrip("/")
        prefix = base if base.endswith("/v1") else base + "/v1"
        if op == CHAT:
            body = to_anthropic(req, model, stream=stream)
            url = prefix + "/messages"
        elif op in (MESSAGES, COUNT_TOKENS):
            body = {k: v for k, v in req.items() if k not in OWN_FIELDS}
            body["model"] = model
            if op == COUNT_TOKENS:
                body.pop("stream", None)
                url = prefix + "/messages/count_tokens"
            else:
                if stream:
                    body["stream"] = True
                else:
                    body.pop("stream", None)
                url = prefix + "/messages"
        else:
            raise Unsupported(f"Anthropic providers do not serve '{op}'.")
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION,
                   "Accept": "text/event-stream" if stream else "application/json"}
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        if provider.headers:
            headers.update(provider.headers)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body), stream=stream)

    def parse(self, op: str, body: bytes, content_type: str) -> Result:
        obj = load_object(body, "upstream", "response body")
        if op == COUNT_TOKENS:
            return Result(obj, None)
        raw_usage = obj.get("usage")
        usage = usage_from(raw_usage) if isinstance(raw_usage, dict) else None
        if op == MESSAGES:
            return Result(obj, usage)
        out = to_chat_completion(obj)
        if usage is not None:
            out["usage"] = openai_usage(usage)
        return Result(out, usage)

    def stream_decoder(self, op: str, name: str = "upstream"
                       ) -> AnthropicChatDecoder | AnthropicNativeDecoder:
        return AnthropicNativeDecoder(name) if op == MESSAGES else AnthropicChatDecoder(name)

    def error(self, name: str, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        try:
            obj: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
            etype, message = _error_parts(obj)
            text = f"{etype}: {message}"
        else:
            text = body[:300].decode("utf-8", "replace").strip()
        retry = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return status_error(name, status, text, retry)
