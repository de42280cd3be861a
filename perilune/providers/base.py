"""The adapter contract. An adapter is pure translation over typed values: it builds the upstream wire
request from the client's request and turns the upstream's response, stream events and errors back
into canonical values. It never performs I/O; the pipeline owns the HTTP call, timeouts and
fallbacks. One module per wire format; OpenAI-compatible hosts are rows of data, not modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from perilune._sse import SSEEvent, parse_block
from perilune.errors import UpstreamError, UpstreamUnavailable
from perilune.schema.canonical import JSON, Usage
from perilune.settings import Timeouts

# Operations an adapter may support (``Adapter.supports``).
CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
IMAGES = "images"
TRANSCRIPTIONS = "transcriptions"
RESPONSES = "responses"  # OpenAI's Responses API, passed natively (adapters of hosts that speak it)


@dataclass(slots=True)
class Provider:
    """A configured upstream: where it is, how to authenticate, how long to wait."""

    name: str
    type: str
    base_url: str
    api_key: str | None
    api_key_env: str | None
    needs_key: bool
    timeouts: Timeouts
    headers: dict[str, str] = field(default_factory=dict)
    model_map: dict[str, str] = field(default_factory=dict)
    max_connections: int = 0
    forward_headers: tuple[str, ...] = ()

    def forwarded(self, client_headers: Mapping[str, str]) -> dict[str, str]:
        """The client headers this provider is configured to receive."""
        exact = {r for r in self.forward_headers if not r.endswith("*")}
        prefixes = tuple(r[:-1] for r in self.forward_headers if r.endswith("*"))
        out = {}
        for name, value in client_headers.items():
            low = name.lower()
            if low in exact or (prefixes and low.startswith(prefixes)):
                out[name] = value
        return out

    @property
    def ready(self) -> bool:
        return bool(self.api_key) or not self.needs_key

    def upstream_model(self, model_id: str) -> str:
        return self.model_map.get(model_id, model_id)


@dataclass(frozen=True, slots=True)
class Upload:
    """A file a client uploaded (multipart), as it travels in a request mapping (e.g. ``req["file"]``)."""

    filename: str
    content_type: str
    data: bytes


def load_object(data: bytes | str, name: str, what: str) -> JSON:
    """An upstream's JSON object (a body or a stream event); anything else is a 502 naming the sender."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"{name} sent a malformed {what}: {data[:120]!r}",
                                  code="upstream_malformed") from None
    if not isinstance(obj, dict):
        raise UpstreamUnavailable(f"{name} sent a {what} that is not a JSON object", code="upstream_malformed")
    return obj


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None  # JSON, or a multipart form (the Content-Type header says which)
    stream: bool = False


@dataclass(slots=True)
class Result:
    """A complete upstream answer in the OpenAI wire shape of its endpoint, plus canonical usage
    (``None`` when the upstream did not report any)."""

    body: JSON
    usage: Usage | None


# A stream chunk relayed as the upstream sent it: checked (one JSON object, no usage, no error) and
# completed with the encoder's tail, never parsed into a mapping and encoded again. (The SSE event as the
# client gets it, the generated text it carries.) A plain tuple: one is made per chunk.
RawChunk = tuple[bytes, str]
StreamItem = JSON | RawChunk


class StreamDecoder(Protocol):
    """Turns upstream SSE events into OpenAI-shaped chunks for one streamed request."""

    usage: Usage | None
    upstream_usage: JSON | None  # the upstream's own usage object, when it speaks the OpenAI dialect
    done: bool

    def feed(self, event: SSEEvent) -> list[JSON]:
        """Chunks to relay (usage removed); raises UpstreamError on an in-stream error event."""
        ...

    def feed_blocks(self, blocks: list[bytes], out: list[StreamItem]) -> None:
        """Decode event blocks (:meth:`perilune._sse.SSEDecoder.blocks`) into ``out``, up to the end of
        the stream; an error is raised after the items before it were added."""
        ...

    def relay_as_sent(self, tail: bytes) -> None:
        """From now on, hand over the chunks that need no change as :data:`RawChunk` (their closing
        ``}`` replaced by ``tail``), when this decoder can; one that cannot ignores it."""
        ...

    def interim_usage(self, output_tokens: int) -> Usage | None:
        """Usage of a stream that ended before the upstream reported it: what the upstream did report
        (e.g. input at message_start) with ``output_tokens`` estimated; None when it reported nothing."""
        ...


class EventDecoder:
    """The event-by-event part of :class:`StreamDecoder` that most decoders share: every block is parsed
    into an event and fed; nothing is relayed as sent."""

    __slots__ = ()
    done: bool

    def feed(self, event: SSEEvent) -> list[JSON]:
        raise NotImplementedError

    def feed_blocks(self, blocks: list[bytes], out: list[StreamItem]) -> None:
        for block in blocks:
            event = parse_block(block)
            if event is not None:
                out.extend(self.feed(event))
                if self.done:
                    return

    def relay_as_sent(self, tail: bytes) -> None:
        return None  # every item is decoded


class Adapter(Protocol):
    supports: frozenset[str]

    def build(self, op: str, provider: Provider, model: str, req: JSON, *, stream: bool) -> UpstreamRequest:
        ...

    def parse(self, op: str, body: bytes, content_type: str) -> Result:
        ...

    def stream_decoder(self, op: str, name: str) -> StreamDecoder:
        ...

    def error(self, name: str, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        ...
