"""The one relay: a served attempt rendered to the client through one encoder per client dialect.

An :class:`Encoder` is pure (no I/O): it turns the winning attempt's result, or its stream of items,
into the bytes of one client dialect, reading usage, cost and timings from :class:`Served`. The relay
(:func:`relay_stream`) owns everything dialect-free about a stream: the first-byte time, observability
capture, the text tally used to estimate output when an upstream reports no usage, and the moment
the usage becomes known. Hang-ups, upstream failures mid-stream and shutdown are branches of the
request's lifecycle (:mod:`perilune.gateway.lifecycle`), which calls the encoder's ``error``.

Encoders here: :class:`OpenAIEncoder` (chat, legacy completions, embeddings, media: JSON and SSE);
the Anthropic ones live in :mod:`perilune.gateway.anthropic_relay`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from perilune._sse import DONE, encode_data
from perilune.accounting import estimate
from perilune.accounting.capture import MessageCapture, StreamCapture
from perilune.accounting.pricing import usd_str
from perilune.errors import PeriluneError
from perilune.providers.base import StreamItem
from perilune.schema.canonical import JSON, Attempt, Cost, Usage
from perilune.tokens import count_tokens

Write = Callable[[bytes], Awaitable[None]]
Capture = StreamCapture | MessageCapture


@dataclass(slots=True)
class Served:
    """What the client is being served, as the encoders read it. Filled in by the lifecycle only."""

    request_id: str
    started_wall: float
    endpoint: str
    provider: str = ""
    model: str = ""  # catalog id of the model served
    upstream_model: str = ""
    native: bool = False  # items / body are in the client's own dialect
    usage: Usage | None = None
    upstream_usage: JSON | None = None  # the upstream's own usage object (OpenAI dialect), kept as sent
    cost: Cost | None = None
    charged_pusd: int | None = None
    free_tokens: int = 0
    ttft_ms: float | None = None
    latency_ms: float | None = None
    prompt_tokens: int = 0  # the local estimate of the prompt, until the upstream reports it
    route: list[Attempt] = field(default_factory=list)


class Encoder(Protocol):
    media_type: str
    body_type: str  # the content type of a non-streamed body

    def body(self, result: JSON, served: Served) -> bytes:
        """A non-streamed answer, usage extended."""
        ...

    def start(self, served: Served) -> bytes:
        """Bytes before the first item (may be empty)."""
        ...

    def item(self, item: JSON, served: Served) -> bytes:
        """One decoded upstream item."""
        ...

    def finish(self, served: Served) -> bytes:
        """The normal end of a stream, with the final usage."""
        ...

    def error(self, e: PeriluneError, served: Served) -> bytes:
        """A failure mid-stream (or the server shutting down); ends the stream."""
        ...

    def text(self, item: JSON) -> str:
        """The generated text an item carries (for output estimates)."""
        ...

    def capture(self) -> Capture | None:
        """An assembler of the streamed answer for observability, or None."""
        ...

    def headers(self, served: Served) -> dict[str, str]:
        """Response headers of a non-streamed answer beyond x-request-id."""
        ...

    def passthrough(self, provider: str) -> bytes | None:
        """The bytes that end a chunk of ``provider``'s relayed as it sent it, in place of its closing
        ``}``; None when every item must pass through :meth:`item`."""
        ...


PickEncoder = Callable[[bool], Encoder]  # native? -> the encoder for the client's dialect


def usage_extension(out: JSON, served: Served) -> JSON:
    """perilune's additions to a usage object, in any dialect: cost parts, what was charged, timings,
    and whether the counts are estimated or covered by the free tier."""
    c, u = served.cost, served.usage or Usage()
    if c is not None:
        out["input_cost_usd"] = usd_str(c.input_pusd)
        out["output_cost_usd"] = usd_str(c.output_pusd)
        out["cache_input_cost_usd"] = usd_str(c.cache_pusd)
        if c.unit_pusd:
            out["unit_cost_usd"] = usd_str(c.unit_pusd)
        out["total_cost_usd"] = usd_str(c.total_pusd)
    if served.charged_pusd is not None:
        out["charged_usd"] = usd_str(served.charged_pusd)
    out["latency_ms"] = round(served.latency_ms or 0.0, 3)
    out["ttft_ms"] = round(served.ttft_ms, 3) if served.ttft_ms is not None else None
    if u.estimated:
        out["estimated"] = True
    if served.free_tokens:
        out["free_tokens"] = served.free_tokens  # covered by the free tier: nothing charged
    return out


def openai_usage(served: Served, upstream: JSON | None = None) -> JSON:
    """OpenAI usage (the upstream's own fields kept) extended with cost and timings."""
    u = served.usage or Usage()
    out: dict[str, Any] = dict(upstream) if upstream else {}
    embeddings = served.endpoint == "embeddings"
    if not upstream or "prompt_tokens" not in out:
        out["prompt_tokens"] = u.prompt_tokens
        if not embeddings:
            out["completion_tokens"] = u.output_tokens
        out["total_tokens"] = u.total_tokens if not embeddings else u.prompt_tokens
        if u.cache_read_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": u.cache_read_tokens}
        if u.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return usage_extension(out, served)


class OpenAIEncoder:
    """The OpenAI dialect: a JSON body with ``provider`` and extended usage, or SSE chunks ending with
    the usage chunk (when the client asked for it) and ``[DONE]``."""

    media_type = "text/event-stream"
    body_type = "application/json"

    def __init__(self, *, include_usage: bool = False, capture: bool = False,
                 prepare: Callable[[JSON, Served], None] | None = None) -> None:
        self.include_usage = include_usage
        self._capture = StreamCapture() if capture else None
        self._prepare = prepare
        self._last: JSON | None = None

    def body(self, result: JSON, served: Served) -> bytes:
        if self._prepare is not None:
            self._prepare(result, served)
        result["provider"] = served.provider
        upstream = result.get("usage")
        result["usage"] = openai_usage(served, upstream if isinstance(upstream, dict) else None)
        return orjson.dumps(result)

    def start(self, served: Served) -> bytes:
        return b""

    def item(self, item: JSON, served: Served) -> bytes:
        item["provider"] = served.provider
        self._last = item
        return encode_data(orjson.dumps(item))

    def finish(self, served: Served) -> bytes:
        if not self.include_usage:
            return DONE
        last = self._last or {}
        final: JSON = {"id": last.get("id", served.request_id),
                       "object": last.get("object", "chat.completion.chunk"),
                       "created": last.get("created", int(served.started_wall)),
                       "model": last.get("model", served.upstream_model),
                       "choices": [], "provider": served.provider,
                       "usage": openai_usage(served, served.upstream_usage)}
        if "system_fingerprint" in last:
            final["system_fingerprint"] = last["system_fingerprint"]
        return encode_data(orjson.dumps(final)) + DONE

    def error(self, e: PeriluneError, served: Served) -> bytes:
        return encode_data(orjson.dumps(e.openai_body())) + DONE

    def text(self, item: JSON) -> str:
        return estimate.chunk_output_text(item)

    def capture(self) -> Capture | None:
        return self._capture

    def headers(self, served: Served) -> dict[str, str]:
        return {}

    def passthrough(self, provider: str) -> bytes | None:
        if self._capture is not None or self._prepare is not None:
            return None
        return b',"provider":' + orjson.dumps(provider) + b"}\n\n"


@dataclass(slots=True)
class Tally:
    """What a stream has generated so far (for usage when the upstream reports none)."""

    texts: list[str] = field(default_factory=list)

    def output_tokens(self) -> int:
        return count_tokens("".join(self.texts))


FLUSH_BYTES = 64 * 1024  # a relay holds at most this much before it writes, even when more is ready


async def relay_stream(batches: AsyncIterator[Sequence[StreamItem]], encoder: Encoder, served: Served, write: Write,
                       tally: Tally, on_usage: Callable[[], None], usage_known: Callable[[], bool],
                       ended: Callable[[], bool] = lambda: False) -> bytes:
    """Relay every item through the encoder (a :data:`RawChunk` as it is). ``on_usage`` is called once
    the upstream has reported the final usage (before the item that needs it, e.g. Anthropic's
    message_delta, is encoded).

    Items that arrived together leave together: a batch (what one upstream read brought) is one write,
    one send, split only above FLUSH_BYTES. Nothing waits for data that has not arrived. Returns what is
    held: the stream's head when no item came, and the last batch, once ``ended()`` says the upstream
    has finished (the caller sends it with the stream's last bytes, in one write).
    """
    capture = encoder.capture()
    head = encoder.start(served)
    held = [head] if head else []
    size = len(head)
    texts = tally.texts
    async for batch in batches:
        for item in batch:
            if isinstance(item, tuple):  # a RawChunk: relayed as sent
                data, text = item
                texts.append(text)
            else:
                texts.append(encoder.text(item))
                if capture is not None:
                    capture.feed(item)
                if usage_known():
                    on_usage()
                data = encoder.item(item, served)
            if data:
                held.append(data)
                size += len(data)
                if size >= FLUSH_BYTES:
                    await write(b"".join(held))
                    held.clear()
                    size = 0
        if size and not ended():
            await write(b"".join(held))
            held.clear()
            size = 0
    return b"".join(held)
