"""The OpenAI-compatible adapter: OpenAI itself and every host that speaks its wire format (Groq,
Together, Mistral, DeepSeek, Fireworks, OpenRouter, xAI, vLLM, Ollama, llama.cpp, LM Studio).

Requests pass through with unknown fields intact; only the model id, perilune's own fields and
``stream_options.include_usage`` (always asked for, so usage is never unknown) are touched.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from perilune._http import status_error
from perilune._sse import SSEEvent
from perilune.errors import UpstreamError
from perilune.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    IMAGES,
    RESPONSES,
    TRANSCRIPTIONS,
    EventDecoder,
    Provider,
    Result,
    StreamItem,
    Upload,
    UpstreamRequest,
    load_object,
)
from perilune.schema.canonical import JSON, Usage
from perilune.schema.openai import PERILUNE_FIELDS

PATHS = {
    CHAT: "/chat/completions",
    COMPLETIONS: "/completions",
    EMBEDDINGS: "/embeddings",
    IMAGES: "/images/generations",
    TRANSCRIPTIONS: "/audio/transcriptions",
    RESPONSES: "/responses",
}
STREAMABLE = (CHAT, COMPLETIONS)


def _message(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip()
    if isinstance(obj, list) and obj:  # some hosts wrap errors in a list
        obj = obj[0]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)
        return str(err)
    return str(obj)


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: object = msgspec.UNSET


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    text: str | None = None  # legacy completions


class _Chunk(msgspec.Struct):
    """What relaying a chunk as sent needs to know of it (its other fields are checked as JSON only)."""

    choices: list[_Choice] = []
    usage: msgspec.UnsetType | None = msgspec.UNSET  # an object (the usage) takes the decoded path
    error: object = msgspec.UNSET
    provider: object = msgspec.UNSET


_CHUNK = msgspec.json.Decoder(_Chunk)
_NULL_USAGE = b',"usage":null'


def _text(chunk: _Chunk) -> str | None:
    """The generated text of a chunk relayed as sent; None when it needs the decoded path (tool calls)."""
    parts = []
    for c in chunk.choices:
        d = c.delta
        if d is None:
            parts.append(c.text or "")
        elif d.tool_calls is not msgspec.UNSET:
            return None
        else:
            parts.append(d.content or "")
    return "".join(parts)


class OpenAIStreamDecoder(EventDecoder):
    __slots__ = ("_tail", "_wanted", "done", "name", "upstream_usage", "usage")

    def __init__(self, name: str) -> None:
        self.name = name
        self.usage: Usage | None = None
        self.upstream_usage: JSON | None = None
        self.done = False
        self._wanted: bytes | None = None  # relay as sent, with this tail ...
        self._tail: bytes | None = None  # ... once a first chunk was decoded

    def relay_as_sent(self, tail: bytes) -> None:
        self._wanted = tail

    def feed_blocks(self, blocks: list[bytes], out: list[StreamItem]) -> None:
        """Chunks relayed as sent (:data:`RawChunk`) when they can be (one line ``data: {...}``, valid JSON,
        no usage object, no error, no ``provider`` of their own, no tool calls); anything else is decoded,
        and so is the stream's first chunk (the encoder takes the stream's id, model and creation time,
        which every chunk repeats, for the usage chunk it adds at the end)."""
        unset = msgspec.UNSET
        for block in blocks:
            tail = self._tail
            if tail is not None and block.startswith(b"data: {") and block.endswith(b"}") and b"\n" not in block:
                try:
                    chunk = _CHUNK.decode(block[6:])
                except (msgspec.DecodeError, msgspec.ValidationError):
                    chunk = None  # the decoded path says what is wrong, or copes
                if chunk is not None and chunk.error is unset and chunk.provider is unset \
                        and (text := _text(chunk)) is not None:
                    if chunk.usage is unset:
                        out.append((block[:-1] + tail, text))
                        continue
                    # "usage": null, as OpenAI sends it before the last chunk (then "obfuscation"), is cut
                    # when it is the only one: a quote after a comma is never inside a string, and a
                    # top-level key that is not the first one follows a comma
                    at = block.find(_NULL_USAGE)
                    if at > 0 and block.find(_NULL_USAGE, at + 1) < 0 and not block.startswith(b'data: {"usage"'):
                        out.append((block[:at] + block[at + len(_NULL_USAGE):-1] + tail, text))
                        continue
            n = len(out)
            super().feed_blocks([block], out)
            if len(out) > n:
                self._tail = self._wanted
            if self.done:
                return

    def interim_usage(self, output_tokens: int) -> Usage | None:
        return None  # this upstream reports usage only at the end

    def feed(self, event: SSEEvent) -> list[JSON]:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return []
        obj = load_object(data, self.name, "stream chunk")
        if event.event == "error" or "error" in obj:
            err = obj.get("error", obj)
            msg = err.get("message") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            status = 429 if code in ("rate_limit_exceeded", 429) else 502
            raise status_error(self.name, status, f"error in stream: {msg}")
        usage = obj.pop("usage", None)
        if usage:
            self.usage = Usage.from_openai(usage)
            self.upstream_usage = usage
            if not obj.get("choices"):
                return []
        return [obj]


def _quoted(value: str) -> str:
    """A multipart parameter value: quotes and line breaks percent-encoded (as browsers do, RFC 7578)."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _form(req: JSON, model: str) -> tuple[bytes, str]:
    """A multipart/form-data body (audio uploads) and its content type: ``Upload`` values become
    files, lists repeat their field."""
    boundary = secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in {**req, "model": model}.items():
        if name in PERILUNE_FIELDS or value is None:
            continue
        for v in value if isinstance(value, list) else (value,):
            if isinstance(v, Upload):
                head = (f'Content-Disposition: form-data; name="{_quoted(name)}"; '
                        f'filename="{_quoted(v.filename)}"\r\nContent-Type: {_quoted(v.content_type)}\r\n\r\n')
                data = v.data
            else:
                head = f'Content-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
                data = (v if isinstance(v, str) else orjson.dumps(v).decode()).encode()
            parts.append(b"--%s\r\n%s%s\r\n" % (boundary.encode(), head.encode(), data))
    parts.append(b"--%s--\r\n" % boundary.encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _transcription_usage(obj: JSON) -> Usage | None:
    """Audio duration from ``verbose_json``'s ``duration`` or a ``{"type": "duration"}`` usage; token usage
    (gpt-4o-transcribe) is kept as tokens. ``None`` when the answer says nothing."""
    raw = obj.get("usage")
    usage = Usage.from_openai(raw) if isinstance(raw, dict) and raw.get("type") != "duration" else Usage()
    if isinstance(obj.get("duration"), (int, float)):
        usage.audio_seconds = Decimal(str(obj["duration"]))
    elif isinstance(raw, dict) and isinstance(raw.get("seconds"), (int, float)):
        usage.audio_seconds = Decimal(str(raw["seconds"]))
    elif not isinstance(raw, dict):
        return None
    return usage


class ResponsesStreamDecoder(EventDecoder):
    """A native Responses event stream: each event passes as it is (the encoder rewrites ids and usage);
    the final event (response.completed / response.incomplete) carries the usage; ``error`` and
    ``response.failed`` are upstream errors."""

    __slots__ = ("done", "name", "upstream_usage", "usage")

    def __init__(self, name: str) -> None:
        self.name = name
        self.usage: Usage | None = None
        self.upstream_usage: JSON | None = None
        self.done = False

    def interim_usage(self, output_tokens: int) -> Usage | None:
        return None  # a Responses stream reports usage only in its final event

    def feed(self, event: SSEEvent) -> list[JSON]:
        if event.data == "[DONE]":
            self.done = True
            return []
        obj = load_object(event.data, self.name, "stream event")
        typ = obj.get("type")
        if typ == "error":
            status = 429 if obj.get("code") in ("rate_limit_exceeded", 429) else 502
            raise status_error(self.name, status, f"error in stream: {obj.get('message')}")
        if typ == "response.failed":
            err = (obj.get("response") or {}).get("error") or {}
            why = err.get("message") if isinstance(err, dict) else err
            raise status_error(self.name, 502, f"response failed: {why}")
        if typ in ("response.completed", "response.incomplete"):
            usage = (obj.get("response") or {}).get("usage")
            if isinstance(usage, dict):
                self.usage, self.upstream_usage = Usage.from_openai(usage), usage
            self.done = True
        return [obj]


class OpenAICompatAdapter:
    def __init__(self, *, responses: bool = False) -> None:
        ops = {CHAT, COMPLETIONS, EMBEDDINGS, IMAGES, TRANSCRIPTIONS}
        self.supports = frozenset(ops | {RESPONSES} if responses else ops)

    def build(self, op: str, provider: Provider, model: str, req: JSON, *, stream: bool) -> UpstreamRequest:
        if op == TRANSCRIPTIONS:
            auth = {"Authorization": f"Bearer {provider.api_key}"} if provider.api_key else {}
            form, content_type = _form(req, model)
            return UpstreamRequest("POST", provider.base_url.rstrip("/") + PATHS[op],
                                   {"Content-Type": content_type, "Accept": "application/json", **auth,
                                    **provider.headers}, form)
        body: dict[str, Any] = {k: v for k, v in req.items() if k not in PERILUNE_FIELDS}
        body["model"] = model
        if stream and op == RESPONSES:
            body["stream"] = True
        elif stream and op in STREAMABLE:
            body["stream"] = True
            opts = body.get("stream_options")
            body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else
                   "application/json"}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        if provider.headers:
            headers.update(provider.headers)
        return UpstreamRequest("POST", provider.base_url.rstrip("/") + PATHS[op], headers,
                               orjson.dumps(body), stream=stream)

    def parse(self, op: str, body: bytes, content_type: str) -> Result:
        obj = load_object(body, "upstream", "response body")
        raw_usage = obj.get("usage")
        usage = Usage.from_openai(raw_usage) if isinstance(raw_usage, dict) else None
        if op == IMAGES:
            usage = usage or Usage()
            usage.images = len(obj.get("data") or ())
        elif op == TRANSCRIPTIONS:
            usage = _transcription_usage(obj)
        return Result(obj, usage)

    def stream_decoder(self, op: str, name: str = "upstream") -> OpenAIStreamDecoder | ResponsesStreamDecoder:
        return ResponsesStreamDecoder(name) if op == RESPONSES else OpenAIStreamDecoder(name)

    def error(self, name: str, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        return status_error(name, status, _message(body), headers.get("Retry-After"))
