"""Shared plumbing of the simulator: config, knobs, responses, SSE streaming."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from itertools import count
from random import Random
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FAULTS = frozenset(
    {
        "400",
        "429",
        "500",
        "503",
        "529",
        "hang",
        "drop",
        "malformed",
        "error-event",
        "timeout-first-byte",
    }
)
#: ``timeout-first-byte`` delays the first byte by this many seconds.
FIRST_BYTE_TIMEOUT_S = 30.0
#: ``retry-after`` header value sent with the ``429`` fault.
RETRY_AFTER_S = 2

dumps = orjson.dumps
loads = orjson.loads


@dataclass(slots=True)
class SimConfig:
    """Global simulator settings; every field can be overridden per request by
    the matching ``x-sim-*`` header (see :func:`knobs_from_headers`)."""

    latency_ms: float = 0
    ttft_ms: float = 0
    tokens_per_s: float = 0  # 0 = unlimited
    chunks: int | None = None  # stream content chunks; None = one per token
    fault: str | None = None
    output_tokens: int = 16
    api_key: str | None = None
    chunk_delay_ms: float = 0  # fixed delay between stream chunks
    strict: bool = False  # Anthropic: require the anthropic-version header
    fault_rate: float = 1.0  # share of requests that get ``fault`` (the others are served normally)
    ttft_jitter_ms: float = 0  # TTFT is uniform in [ttft_ms, ttft_ms + ttft_jitter_ms]
    slow_tail_rate: float = 0  # share of requests whose TTFT gets ``slow_tail_ms`` more
    slow_tail_ms: float = 0
    context_tokens: int = 0  # prompts over this many tokens are refused as too long (0 = no limit)
    seed: int | None = None  # seeds the fault / slow-tail draws (None = random)


@dataclass(slots=True)
class Knobs:
    latency_ms: float
    ttft_ms: float
    tokens_per_s: float
    chunks: int | None
    chunk_delay_ms: float
    output_tokens: int
    fault: str | None
    cache_read: bool = False
    fault_rate: float = 1.0
    ttft_jitter_ms: float = 0
    slow_tail_rate: float = 0
    slow_tail_ms: float = 0
    context_tokens: int = 0

    @classmethod
    def from_config(cls, c: SimConfig) -> Knobs:
        return cls(
            latency_ms=c.latency_ms,
            ttft_ms=c.ttft_ms,
            tokens_per_s=c.tokens_per_s,
            chunks=c.chunks,
            chunk_delay_ms=c.chunk_delay_ms,
            output_tokens=c.output_tokens,
            fault=c.fault,
            fault_rate=c.fault_rate,
            ttft_jitter_ms=c.ttft_jitter_ms,
            slow_tail_rate=c.slow_tail_rate,
            slow_tail_ms=c.slow_tail_ms,
            context_tokens=c.context_tokens,
        )

    @property
    def random(self) -> bool:
        """Does serving a request draw random numbers (fault rate, TTFT jitter, slow tail)?"""
        return bool((self.fault is not None and self.fault_rate < 1) or self.ttft_jitter_ms or self.slow_tail_rate)

    def draw(self, rng: Random) -> Knobs:
        """This request's knobs: whether the fault hits, and its TTFT (jitter and slow tail)."""
        k = replace(self)
        if k.fault is not None and k.fault_rate < 1 and rng.random() >= k.fault_rate:
            k.fault = None
        if k.ttft_jitter_ms:
            k.ttft_ms += rng.uniform(0.0, k.ttft_jitter_ms)
        if k.slow_tail_rate and rng.random() < k.slow_tail_rate:
            k.ttft_ms += k.slow_tail_ms
        return k

    @property
    def paced(self) -> bool:
        return bool(self.ttft_ms or self.chunk_delay_ms or self.tokens_per_s)

    def generation_delay(self, tokens: int) -> float:
        """Seconds a non-streamed answer of ``tokens`` tokens takes to 'generate'
        (the same total time the streamed variant would take)."""
        d = self.ttft_ms / 1000.0
        if self.chunk_delay_ms:
            nchunks = min(self.chunks or tokens, tokens)
            d += max(nchunks - 1, 0) * self.chunk_delay_ms / 1000.0
        elif self.tokens_per_s:
            d += tokens / self.tokens_per_s
        return d


def _num(value: bytes) -> float:
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 0.0


def knobs_from_headers(base: Knobs, headers: dict[bytes, bytes]) -> Knobs:
    """Apply ``x-sim-*`` request headers on top of the global knobs."""
    k: Knobs | None = None
    for name, value in headers.items():
        if not name.startswith(b"x-sim-"):
            continue
        if k is None:
            k = replace(base)
        key = name[6:]
        if key == b"latency-ms":
            k.latency_ms = _num(value)
        elif key == b"ttft-ms":
            k.ttft_ms = _num(value)
        elif key == b"tokens-per-s":
            k.tokens_per_s = _num(value)
        elif key == b"chunks":
            n = int(_num(value))
            k.chunks = n if n > 0 else None
        elif key == b"chunk-delay-ms":
            k.chunk_delay_ms = _num(value)
        elif key == b"output-tokens":
            k.output_tokens = int(_num(value))
        elif key == b"fault":
            f = value.decode("latin-1").strip().lower()
            k.fault = f if f in FAULTS else None
        elif key == b"cache":
            k.cache_read = value.strip().lower() == b"read"
        elif key == b"fault-rate":
            k.fault_rate = min(_num(value), 1.0)
        elif key == b"ttft-jitter-ms":
            k.ttft_jitter_ms = _num(value)
        elif key == b"slow-tail-rate":
            k.slow_tail_rate = min(_num(value), 1.0)
        elif key == b"slow-tail-ms":
            k.slow_tail_ms = _num(value)
        elif key == b"context-tokens":
            k.context_tokens = int(_num(value))
    return k if k is not None else base


class SimulatedDrop(Exception):
    """Raised inside the app to make the server abort the connection."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    gen_tokens: int = 0  # generated tokens, for non-stream timing emulation


@dataclass(slots=True)
class StreamPlan:
    """A fully pre-rendered SSE response.

    ``head`` frames go out right after the response headers, then (after
    ``ttft``) the ``content`` frames, paced by ``weights`` (tokens per frame),
    then the ``tail`` frames immediately after the last content frame.
    ``error_frame`` is the provider-native in-stream error used by the
    ``error-event`` fault.
    """

    head: list[bytes]
    content: list[bytes]
    weights: list[int]
    tail: list[bytes]
    error_frame: bytes
    content_type: bytes = b"text/event-stream; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[bytes, bytes]
    body: bytes
    knobs: Knobs
    config: SimConfig

    def header(self, name: bytes) -> str | None:
        v = self.headers.get(name)
        return v.decode("latin-1") if v is not None else None

    def json(self) -> Any:
        return loads(self.body) if self.body else None


# --------------------------------------------------------------------------- ids

_PREFIX = os.urandom(4).hex()
_counter = count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}{_PREFIX}{next(_counter):012x}"


def now() -> int:
    return int(time.time())


def group_pieces(pieces: list[str], chunks: int | None) -> list[list[str]]:
    """Split token pieces into ``chunks`` nearly equal groups (default: one per token)."""
    n = len(pieces)
    if not chunks or chunks >= n:
        return [[p] for p in pieces]
    base, extra = divmod(n, chunks)
    out: list[list[str]] = []
    i = 0
    for c in range(chunks):
        size = base + (1 if c < extra else 0)
        out.append(pieces[i : i + size])
        i += size
    return out


def json_response(status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(status, dumps(obj), headers=headers or [])


# --------------------------------------------------------------------------- sending


async def wait_disconnect(receive: Receive) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


async def sleep_or_disconnect(receive: Receive, seconds: float) -> bool:
    """Sleep; return True if the client went away first."""
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(wait_disconnect(receive), seconds)
    except TimeoutError:
        return False
    return True


def _start(status: int, content_type: bytes, extra: list[tuple[bytes, bytes]], length: int | None) -> Message:
    headers = [(b"content-type", content_type)]
    if length is not None:
        headers.append((b"content-length", b"%d" % length))
    headers.extend(extra)
    return {"type": "http.response.start", "status": status, "headers": headers}


async def send_response(send: Send, resp: Response, fault: str | None = None) -> None:
    body = resp.body
    if fault == "malformed" and resp.status == 200 and resp.content_type.startswith(b"application/json"):
        body = body[: max(len(body) // 2, 1)]
    await send(_start(resp.status, resp.content_type, resp.headers, len(body)))
    if fault == "drop":
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise SimulatedDrop("simulated connection drop")
    await send({"type": "http.response.body", "body": body, "more_body": False})


def malform(frame: bytes) -> bytes:
    """Truncate the JSON of one SSE frame so it no longer parses."""
    cut = frame.rstrip(b"\r\n")
    i = cut.rfind(b"data: ")
    payload_start = i + 6 if i >= 0 else 0
    keep = payload_start + max((len(cut) - payload_start) // 2, 1)
    sep = b"\r\n\r\n" if frame.endswith(b"\r\n\r\n") else b"\n\n"
    return cut[:keep] + sep


async def send_stream(send: Send, receive: Receive, plan: StreamPlan, knobs: Knobs) -> None:
    fault = knobs.fault
    head, content, weights, tail = plan.head, plan.content, plan.weights, plan.tail
    drop_at: int | None = None
    if fault == "drop":
        drop_at = len(content) // 2
    elif fault == "error-event":
        k = max(len(content) // 2, 1) if content else 0
        content, weights, tail = content[:k], weights[:k], [plan.error_frame]
    elif fault == "malformed":
        k = len(content) // 2
        if content:
            content = [*content[:k], malform(content[k]), *content[k + 1 :]]
        else:
            tail = [malform(tail[0]), *tail[1:]] if tail else [b"data: {\n\n"]
    await send(_start(200, plan.content_type, plan.headers, None))

    if not knobs.paced:
        if drop_at is not None:
            await _body(send, b"".join(head + content[:drop_at]), True)
            raise SimulatedDrop("simulated connection drop")
        await _body(send, b"".join(head + content + tail), False)
        return

    loop = asyncio.get_running_loop()
    watcher = asyncio.ensure_future(wait_disconnect(receive))
    try:
        if head:
            await _body(send, b"".join(head), True)
        target = loop.time() + knobs.ttft_ms / 1000.0
        for i, frame in enumerate(content):
            if i == drop_at:
                raise SimulatedDrop("simulated connection drop")
            if i:
                if knobs.chunk_delay_ms:
                    target += knobs.chunk_delay_ms / 1000.0
                elif knobs.tokens_per_s:
                    target += weights[i] / knobs.tokens_per_s
            delay = target - loop.time()
            if delay > 0:
                await asyncio.wait({watcher}, timeout=delay)
            if watcher.done():
                return
            if i == len(content) - 1:
                await _body(send, frame + b"".join(tail), False)
                return
            await _body(send, frame, True)
        if drop_at is not None:
            raise SimulatedDrop("simulated connection drop")
        delay = target - loop.time()
        if delay > 0:
            await asyncio.wait({watcher}, timeout=delay)
        await _body(send, b"".join(tail), False)
    finally:
        watcher.cancel()


async def _body(send: Send, data: bytes, more: bool) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


def coalesce(events: list[tuple[bytes, int]]) -> tuple[list[bytes], list[int], list[bytes]]:
    """Turn (frame, tokens) events into paced content frames + tail.

    Zero-token frames (block starts, pings, role chunks) are glued to the next
    token-bearing frame so pacing only ever waits before generated tokens;
    zero-token frames after the last token-bearing one form the tail.
    """
    content: list[bytes] = []
    weights: list[int] = []
    pending: list[bytes] = []
    for frame, w in events:
        pending.append(frame)
        if w > 0:
            content.append(b"".join(pending))
            weights.append(w)
            pending = []
    return content, weights, pending
