"""Canonical, dialect-free values that flow through the gateway.

Payload shapes: a chat completion and its stream chunks travel between adapters and relays in the
OpenAI wire shape (a plain mapping), because that is the superset every dialect converts to and from,
and because keeping the upstream's own mapping is what lets unknown provider fields survive the trip.
Everything the gateway itself reasons about (usage, cost, timings, the route) is typed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perilune.gateway.auth import Principal
    from perilune.limits.base import Ticket

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


@dataclass(frozen=True, slots=True)
class Cost:
    """Exact cost in integer pico-USD (1e-12 USD); the ``*_usd`` properties are Decimal views for edges."""

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


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    status: int
    error: str | None = None


@dataclass(slots=True)
class Outcome:
    """What one request did: filled in along the path, read by the relay and the usage recorder."""

    request_id: str
    started: float  # perf_counter()
    started_wall: float  # time.time()
    dialect: str
    endpoint: str
    model_requested: str = ""
    model_served: str = ""
    provider: str = ""
    status: int = 200
    error_type: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    stream: bool = False
    route: list[Attempt] = field(default_factory=list)
    # Opt-in payload capture ("observability": true): filled only when asked (perilune.accounting.capture).
    capture: bool = False
    payload_request: Any = None  # the request mapping as the client sent it
    payload_response: Any = None  # the response mapping, or a StreamCapture assembling a stream
    # Accounting (perilune.accounting.ledger): who asks, what to reserve, what was charged.
    principal: Principal | None = None
    estimate_in: int = 0  # prompt tokens, estimated locally
    estimate_out: int | None = None  # max output tokens asked for (None: not given, a default cap applies)
    estimate_n: int = 1  # choices
    estimate_unit_usd: Decimal = Decimal(0)  # per-image / per-minute worst case
    ticket: Ticket | None = None
    charged_pusd: int | None = None
    free_tokens: int | None = None
