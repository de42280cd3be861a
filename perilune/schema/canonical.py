"""Canonical, dialect-free values that flow through the gateway.

Payload shapes: a chat completion and its stream chunks travel between adapters and relays in the
OpenAI wire shape (a plain mapping), because that is the superset every dialect converts to and from,
and because keeping the upstream's own mapping is what lets unknown provider fields survive the trip.
Everything the gateway itself reasons about (usage, cost, timings, the route) is typed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

JSON = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Token counts with one meaning whatever the provider.

    ``input_tokens`` excludes cache reads and cache writes (Anthropic's meaning); OpenAI's
    ``prompt_tokens`` is ``input + cache_read + cache_write``. ``output_tokens`` includes reasoning.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    images: int = 0
    audio_seconds: Decimal = Decimal(0)
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @classmethod
    def from_openai(cls, u: JSON) -> Usage:
        """OpenAI-shaped usage: prompt_tokens includes cached tokens; completion includes reasoning."""
        prompt = int(u.get("prompt_tokens") or u.get("input_tokens") or 0)
        completion = int(u.get("completion_tokens") or u.get("output_tokens") or 0)
        pd = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
        cd = u.get("completion_tokens_details") or u.get("output_tokens_details") or {}
        cached = int(pd.get("cached_tokens") or 0)
        return cls(
            input_tokens=max(prompt - cached, 0),
            cache_read_tokens=min(cached, prompt),
            output_tokens=completion,
            reasoning_tokens=int(cd.get("reasoning_tokens") or 0),
        )


class Cost(NamedTuple):
    """Exact cost in integer pico-USD (1e-12 USD); the ``*_usd`` properties are Decimal views for edges.
    A NamedTuple: built once per request, and a frozen dataclass's ``__init__`` costs several times more."""

    input_pusd: int = 0
    output_pusd: int = 0
    cache_pusd: int = 0  # cache reads + cache writes
    unit_pusd: int = 0  # per image / per audio minute

    @property
    def total_pusd(self) -> int:
        return self.input_pusd + self.output_pusd + self.cache_pusd + self.unit_pusd

    @property
    def input_usd(self) -> Decimal:
        return _usd(self.input_pusd)

    @property
    def output_usd(self) -> Decimal:
        return _usd(self.output_pusd)

    @property
    def cache_usd(self) -> Decimal:
        return _usd(self.cache_pusd)

    @property
    def unit_usd(self) -> Decimal:
        return _usd(self.unit_pusd)

    @property
    def total_usd(self) -> Decimal:
        return _usd(self.total_pusd)


def _usd(pico: int) -> Decimal:
    return Decimal(pico).scaleb(-12) if pico else Decimal(0)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one deployment within a request (the pipeline's per-attempt result)."""

    provider: str
    model: str
    status: int
    error: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """What one request did, as recorded: built once, by the request's lifecycle, when it ends."""

    request_id: str
    started_wall: float  # time.time()
    dialect: str
    endpoint: str
    model_requested: str
    model_served: str
    provider: str
    status: int
    error_type: str | None
    usage: Usage | None
    cost: Cost | None
    ttft_ms: float | None
    latency_ms: float | None
    stream: bool
    route: tuple[Attempt, ...]
    charged_pusd: int | None
    free_tokens: int | None
    key_id: str | None
    account_id: str | None
    app: str
    alias: str | None = None  # the alias the client asked for, when one was resolved
    # Opt-in payload capture ("observability": true): filled only when asked (perilune.accounting.capture).
    capture: bool = False
    payload_request: Any = None  # the request mapping as the client sent it
    payload_response: Any = None  # the response mapping, or a capture assembling a stream
    extra: JSON | None = None  # endpoint-specific facts kept with the payload (e.g. a router decision)
