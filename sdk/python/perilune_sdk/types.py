"""The gateway's response objects as typed, immutable values.

Field names follow the wire (snake_case, or an alias for the catalog's camelCase keys). Money is
``Decimal`` (exact), timings are milliseconds as ``float``; ``None`` means the gateway did not say.
Top-level objects keep the JSON they were built from in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from perilune_sdk._account_types import (
    AggregateCost,
    AggregateRow,
    AggregateTokens,
    AlertSettings,
    Balance,
    FreeConfig,
    ModelInfo,
    ModelParameters,
    ModelPrice,
    ModelProviders,
    PercentileInfo,
    Percentiles,
    ProviderHealth,
    ProviderInfo,
    RecordCost,
    RecordUsage,
    RouteAttempt,
    UsageAggregate,
    UsagePage,
    UsageRecord,
)
from perilune_sdk._convert import dictf, listf, raw_field

frozen = dataclass(frozen=True, slots=True)


# ---- cost and timings, on every completion -------------------------------------------------------

@frozen
class Usage:
    """OpenAI usage extended with perilune's cost (USD) and timings (ms)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: dict[str, int] | None = None
    completion_tokens_details: dict[str, int] | None = None
    input_cost_usd: Decimal | None = None
    output_cost_usd: Decimal | None = None
    cache_input_cost_usd: Decimal | None = None
    unit_cost_usd: Decimal | None = None
    total_cost_usd: Decimal | None = None
    charged_usd: Decimal | None = None  # what the balance was charged (0 when the free tier covered it)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    estimated: bool = False
    free_tokens: int | None = None
    raw: dict[str, Any] = raw_field()


# ---- chat ----------------------------------------------------------------------------------------

@frozen
class FunctionCall:
    name: str | None = None
    arguments: str | None = None


@frozen
class ToolCall:
    id: str | None = None
    type: str | None = None
    function: FunctionCall | None = None
    index: int | None = None


@frozen
class ChatMessage:
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    annotations: list[Any] | None = None
    function_call: FunctionCall | None = None
    audio: Any = None


@frozen
class ChatChoice:
    index: int = 0
    message: ChatMessage = ChatMessage()
    finish_reason: str | None = None
    logprobs: Any = None


@frozen
class RouterCandidate:
    model: str = ""
    predicted_quality: float | None = None  # the estimated probability of a correct answer, in [0, 1]
    expected_cost_usd: Decimal | None = None
    expected_cost_pusd: int | None = None  # the same, in pico-USD
    score: float | None = None  # (1 - predicted_quality) + cost_weight * cost / the candidates' max cost
    servable: bool | None = None  # a provider here serves it (``execute`` needs that)


@frozen
class RouterCluster:
    """The prompt's cluster: its index, the weight of that cluster, the number of clusters, hard or soft."""

    index: int | None = None
    weight: float | None = None
    k: int | None = None
    assignment: str | None = None


@frozen
class RouterDecision:
    """What ``POST /v1/router`` chose: the model, every candidate's predicted quality, cost and score."""

    object: str = "router.decision"
    model: str = ""
    served_model: str | None = None  # the catalog model that serves it here (None: not servable)
    cost_weight: float | None = None
    candidates: list[RouterCandidate] = listf()
    cluster: RouterCluster | None = None
    embedder: str | None = None
    profiles: str | None = None  # where the profiles came from
    routing_ms: float | None = None
    cached: bool | None = None  # the prompt's embedding came from the cache
    raw: dict[str, Any] = raw_field()


@frozen
class ChatCompletion:
    id: str = ""
    object: str = "chat.completion"
    created: int | None = None
    model: str = ""
    provider: str | None = None
    choices: list[ChatChoice] = listf()
    usage: Usage = Usage()  # all None when the gateway sent none
    system_fingerprint: str | None = None
    service_tier: str | None = None
    router: RouterDecision | None = None
    raw: dict[str, Any] = raw_field()

    @property
    def text(self) -> str:
        """The first choice's content ('' when it has none)."""
        return (self.choices[0].message.content or "") if self.choices else ""


@frozen
class ChatDelta:
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    function_call: FunctionCall | None = None


@frozen
class ChunkChoice:
    index: int = 0
    delta: ChatDelta = ChatDelta()
    finish_reason: str | None = None
    logprobs: Any = None


@frozen
class ChatCompletionChunk:
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int | None = None
    model: str = ""
    provider: str | None = None
    choices: list[ChunkChoice] = listf()
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    obfuscation: str | None = None
    router: RouterDecision | None = None
    raw: dict[str, Any] = raw_field()


# ---- legacy completions, embeddings --------------------------------------------------------------

@frozen
class CompletionChoice:
    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: Any = None


@frozen
class Completion:
    id: str = ""
    object: str = "text_completion"
    created: int | None = None
    model: str = ""
    provider: str | None = None
    choices: list[CompletionChoice] = listf()
    usage: Usage = Usage()  # all None when the gateway sent none
    system_fingerprint: str | None = None
    raw: dict[str, Any] = raw_field()


@frozen
class Embedding:
    index: int = 0
    embedding: list[float] | str = listf()  # str when encoding_format="base64"
    object: str = "embedding"


@frozen
class Embeddings:
    object: str = "list"
    data: list[Embedding] = listf()
    model: str = ""
    provider: str | None = None
    usage: Usage = Usage()  # all None when the gateway sent none
    raw: dict[str, Any] = raw_field()


# ---- Anthropic dialect: /v1/messages -------------------------------------------------------------

@frozen
class MessageUsage:
    """Anthropic usage (``input_tokens`` excludes cache reads and writes) with perilune's cost and timings."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: dict[str, int] | None = None
    service_tier: str | None = None
    server_tool_use: Any = None
    input_cost_usd: Decimal | None = None
    output_cost_usd: Decimal | None = None
    cache_input_cost_usd: Decimal | None = None
    unit_cost_usd: Decimal | None = None
    total_cost_usd: Decimal | None = None
    charged_usd: Decimal | None = None  # what the balance was charged (0 when the free tier covered it)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    estimated: bool = False
    free_tokens: int | None = None
    raw: dict[str, Any] = raw_field()


@frozen
class ContentBlock:
    """One block of a message: ``text``, ``tool_use``, ``thinking``, ... (other keys in ``raw``)."""

    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    thinking: str | None = None
    signature: str | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class Message:
    id: str = ""
    type: str = "message"
    role: str = "assistant"
    model: str = ""
    provider: str | None = None
    content: list[ContentBlock] = listf()
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: MessageUsage = MessageUsage()
    container: Any = None
    raw: dict[str, Any] = raw_field()

    @property
    def text(self) -> str:
        return "".join(b.text or "" for b in self.content if b.type == "text")


@frozen
class MessageStreamEvent:
    """One event of a streamed message (``message_start``, ``content_block_delta``, ``message_delta``, ...)."""

    type: str = ""
    index: int | None = None
    message: Message | None = None
    content_block: ContentBlock | None = None
    delta: dict[str, Any] | None = None
    usage: MessageUsage | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class MessageTokenCount:
    input_tokens: int = 0
    estimated: bool = False
    raw: dict[str, Any] = raw_field()


# ---- the Responses API ---------------------------------------------------------------------------

@frozen
class ResponseUsage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: dict[str, int] | None = None
    output_tokens_details: dict[str, int] | None = None
    input_cost_usd: Decimal | None = None
    output_cost_usd: Decimal | None = None
    cache_input_cost_usd: Decimal | None = None
    unit_cost_usd: Decimal | None = None
    total_cost_usd: Decimal | None = None
    charged_usd: Decimal | None = None  # what the balance was charged (0 when the free tier covered it)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    estimated: bool = False
    free_tokens: int | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class Response:
    """A Responses API object; its many optional settings echoed back are in ``raw``."""

    id: str = ""
    object: str = "response"
    created_at: float | None = None
    status: str | None = None
    model: str = ""
    provider: str | None = None
    output: list[dict[str, Any]] = listf()
    usage: ResponseUsage | None = None
    error: Any = None
    incomplete_details: Any = None
    previous_response_id: str | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True

    @property
    def output_text(self) -> str:
        parts: list[str] = []
        for item in self.output:
            if item.get("type") == "message":
                for c in item.get("content") or ():
                    if isinstance(c, dict) and c.get("type") == "output_text":
                        parts.append(str(c.get("text", "")))
        return "".join(parts)


@frozen
class ResponseStreamEvent:
    type: str = ""
    sequence_number: int | None = None
    delta: Any = None
    response: Response | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class RouterProfile:
    """One profiled model of ``GET /v1/router/profiles``: its quality per prompt cluster and mean cost."""

    id: str = ""
    validation_size: int | None = None
    clusters: int | None = None
    quality: list[float] = listf()  # per cluster, in [0, 1]
    cluster_sizes: list[int] = listf()
    accuracy: float | None = None
    mean_cost_usd: Decimal | None = None
    mean_cost_pusd: int | None = None
    mean_prompt_tokens: float | None = None
    mean_output_tokens: float | None = None
    served_model: str | None = None
    servable: bool | None = None
    source: str | None = None  # the data sets it was measured on
    raw: dict[str, Any] = raw_field()


@frozen
class RouterProfiles:
    """``GET /v1/router/profiles``: every profiled model, the embedder and the provenance of the profiles."""

    object: str = "list"
    data: list[RouterProfile] = listf()
    embedder: str | None = None
    assignment: str | None = None
    clusters: int | None = None
    profiles: str | None = None
    provenance: dict[str, Any] = dictf()  # data sets, build date, sizes, how K was chosen
    raw: dict[str, Any] = raw_field()


@frozen
class Feedback:
    object: str = "feedback"
    request_id: str = ""
    score: float | None = None
    raw: dict[str, Any] = raw_field()


__all__ = [
    "AggregateCost",
    "AggregateRow",
    "AggregateTokens",
    "AlertSettings",
    "Balance",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatDelta",
    "ChatMessage",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "ContentBlock",
    "Embedding",
    "Embeddings",
    "Feedback",
    "FreeConfig",
    "FunctionCall",
    "Message",
    "MessageStreamEvent",
    "MessageTokenCount",
    "MessageUsage",
    "ModelInfo",
    "ModelParameters",
    "ModelPrice",
    "ModelProviders",
    "PercentileInfo",
    "Percentiles",
    "ProviderHealth",
    "ProviderInfo",
    "RecordCost",
    "RecordUsage",
    "Response",
    "ResponseStreamEvent",
    "ResponseUsage",
    "RouteAttempt",
    "RouterCandidate",
    "RouterCluster",
    "RouterDecision",
    "RouterProfile",
    "RouterProfiles",
    "ToolCall",
    "Usage",
    "UsageAggregate",
    "UsagePage",
    "UsageRecord",
]
