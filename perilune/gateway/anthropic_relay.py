"""Encoders for the Anthropic dialect (/v1/messages): a message, or the Anthropic event stream, with
perilune's enrichment. ``usage`` carries the same cost and timing fields as the OpenAI dialect and the
message a top-level ``provider``; in a stream, the message_delta's usage carries them.

Two shapes: *native* (an Anthropic upstream's own events, relayed as they come, only message_start
and message_delta touched) and *converted* (canonical chunks from any other upstream, turned into the
Anthropic event sequence by :class:`perilune.schema.convert.EventEncoder`). A failure mid-stream is
``event: error`` with ``{"type": "error", "error": {...}}``, then the stream ends.
"""

from __future__ import annotations

import orjson

from perilune._sse import encode_event
from perilune.accounting import estimate
from perilune.accounting.capture import MessageCapture, StreamCapture
from perilune.errors import PeriluneError
from perilune.gateway.relay import Capture, Encoder, PickEncoder, Served, usage_extension
from perilune.schema.canonical import JSON, Usage
from perilune.schema.convert import EventEncoder, to_anthropic_message


def anthropic_usage(served: Served, upstream: JSON | None = None) -> JSON:
    """Anthropic usage (the upstream's own fields kept) with canonical counts, cost and timings."""
    u = served.usage or Usage()
    out: JSON = dict(upstream) if upstream else {}
    out["input_tokens"] = u.input_tokens
    out["cache_creation_input_tokens"] = u.cache_write_tokens
    out["cache_read_input_tokens"] = u.cache_read_tokens
    out["output_tokens"] = u.output_tokens
    return usage_extension(out, served)


def message_id(request_id: str) -> str:
    """Anthropic-style id for a message perilune composes (the request id's random part)."""
    return "msg_" + request_id.removeprefix("req_")


def _event(name: str, payload: JSON) -> bytes:
    return encode_event(name, orjson.dumps(payload))


def _message_body(msg: JSON, served: Served) -> bytes:
    upstream = msg.get("usage")
    msg["usage"] = anthropic_usage(served, upstream if isinstance(upstream, dict) else None)
    msg["provider"] = served.provider
    return orjson.dumps(msg)


class _Base:
    media_type = "text/event-stream"
    body_type = "application/json"

    def headers(self, served: Served) -> dict[str, str]:
        return {}

    def passthrough(self, provider: str) -> bytes | None:
        return None  # Anthropic events are rewritten (ids, usage) or converted

    def error(self, e: PeriluneError, served: Served) -> bytes:
        return _event("error", e.anthropic_body())


class AnthropicConvertedEncoder(_Base):
    """Canonical chunks from a non-Anthropic upstream -> the Anthropic message / event sequence."""

    def __init__(self, *, capture: bool = False) -> None:
        self._enc = EventEncoder()
        self._capture = StreamCapture() if capture else None

    def body(self, result: JSON, served: Served) -> bytes:
        return _message_body(to_anthropic_message(result, message_id(served.request_id)), served)

    def start(self, served: Served) -> bytes:
        """message_start carries the prompt's count: the upstream's when it reported it before the first
        delta (Gemini does), else the local estimate, flagged ``estimated``."""
        known = served.usage
        name, payload = self._enc.start(message_id(served.request_id), served.upstream_model,
                                        {"provider": served.provider},
                                        input_tokens=known.prompt_tokens if known else served.prompt_tokens,
                                        estimated=known is None)
        return _event(name, payload)

    def item(self, item: JSON, served: Served) -> bytes:
        return b"".join(_event(name, payload) for name, payload in self._enc.feed(item))

    def finish(self, served: Served) -> bytes:
        return b"".join(_event(name, payload) for name, payload in self._enc.finish(anthropic_usage(served)))

    def text(self, item: JSON) -> str:
        return estimate.chunk_output_text(item)

    def capture(self) -> Capture | None:
        return self._capture


class AnthropicNativeEncoder(_Base):
    """An Anthropic upstream's own message or events, relayed as they come; message_start gains
    ``provider``, message_delta's usage gains the canonical counts, cost and timings."""

    def __init__(self, *, capture: bool = False) -> None:
        self._capture = MessageCapture() if capture else None
        self._stopped = False

    def body(self, result: JSON, served: Served) -> bytes:
        return _message_body(result, served)

    def start(self, served: Served) -> bytes:
        return b""

    def item(self, item: JSON, served: Served) -> bytes:
        typ = str(item.get("type"))
        if typ == "message_start" and isinstance(item.get("message"), dict):
            item["message"]["provider"] = served.provider
        elif typ == "message_delta":
            upstream = item.get("usage")
            item["usage"] = anthropic_usage(served, upstream if isinstance(upstream, dict) else None)
        elif typ == "message_stop":
            self._stopped = True
        return _event(typ, item)

    def finish(self, served: Served) -> bytes:
        return b"" if self._stopped else _event("message_stop", {"type": "message_stop"})

    def text(self, item: JSON) -> str:
        if item.get("type") != "content_block_delta":
            return ""
        delta = item.get("delta") or {}
        return str(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")

    def capture(self) -> Capture | None:
        return self._capture


def anthropic_encoder(capture: bool) -> PickEncoder:
    """The encoder chooser for /v1/messages: native when the upstream speaks Anthropic."""
    def pick(native: bool) -> Encoder:
        return AnthropicNativeEncoder(capture=capture) if native else AnthropicConvertedEncoder(capture=capture)
    return pick
