"""The gateway's response objects as typed, immutable values.

Field names follow the wire (snake_case, or an alias for the catalog's camelCase keys). Money is
``Decimal`` (exact), timings are milliseconds as ``float``; ``None`` means the gateway did not say.
Every object keeps the JSON it was built from in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from perilune_sdk._convert import alias, dictf, listf, raw_field

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
    predicted_quality: float | None = None
    expected_cost_usd: Decimal | None = None
    score: float | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class RouterDecision:
    """What ``POST /v1/router`` chose: the model, every candidate's predicted quality, cost and score."""

    model: str = ""
    cost_weight: float | None = None
    candidates: list[RouterCandidate] = listf()
    cluster: Any = None
    embedder: Any = None
    routing_ms: float | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


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


# ---- catalog and providers -----------------------------------------------------------------------

@frozen
class ModelPrice:
    """USD per million tokens."""

    input: Decimal | None = None
    output: Decimal | None = None
    discount_percentage: float | None = alias("discountPercentage")
    cache_read: Decimal | None = alias("cacheRead")
    cache_write: Decimal | None = alias("cacheWrite")
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class ModelParameters:
    context: int | None = None
    max_output_tokens: int | None = None


@frozen
class FreeConfig:
    max_tokens: int | None = alias("maxTokens")
    is_premium: bool | None = alias("isPremium")


@frozen
class ModelInfo:
    """One catalog entry of ``GET /v1/models``."""

    id: str = ""
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None
    model_id: str | None = alias("modelId")
    permaslug: str | None = None
    name: str | None = None
    provider: str | None = None
    description: str | None = None
    parameters: ModelParameters | None = None
    price: ModelPrice | None = alias("pricePerMillionTokens")
    supported_parameters: list[str] = alias("supportedParameters", factory=list)
    input_modalities: list[str] = alias("inputModalities", factory=list)
    output_modalities: list[str] = alias("outputModalities", factory=list)
    free_config: FreeConfig | None = alias("freeConfig")
    is_enabled: bool | None = alias("isEnabled")
    support_reasoning: bool | None = alias("supportReasoning")
    max_completion_tokens: int | None = alias("maxCompletionTokens")
    avg_throughput: float | None = alias("avgThroughput")
    release_date: str | None = alias("releaseDate")
    created_at: str | None = alias("createdAt")
    updated_at: str | None = alias("updatedAt")
    raw: dict[str, Any] = raw_field()


@frozen
class ProviderHealth:
    """A provider serving one model, with live figures over a recent window (``None``: not yet measured)."""

    provider: str = ""
    upstream_model: str | None = None
    status: str | None = None  # ok, degraded or down
    price: Any = None
    context: int | None = None
    latency_ms_p50: float | None = None
    ttft_ms_p50: float | None = None
    throughput_tps: float | None = None
    error_rate: float | None = None
    requests: int | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class ModelProviders:
    model: str = ""
    providers: list[ProviderHealth] = listf()
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class ProviderInfo:
    """A configured provider and the models it serves."""

    provider: str = ""
    models: list[Any] = listf()
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class RouterProfile:
    """One profiled model of ``GET /v1/router/profiles`` (per-cluster quality, provenance in ``raw``)."""

    model: str | None = None
    id: str | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class Feedback:
    request_id: str | None = None
    score: float | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


# ---- money and usage ------------------------------------------------------------------------------

@frozen
class AlertSettings:
    thresholds_usd: list[Decimal] = listf()
    webhook_url: str | None = None


@frozen
class Balance:
    object: str = "balance"
    account_id: str = ""
    balance_usd: Decimal = Decimal(0)
    currency: str = "USD"
    prepaid: bool = True
    spend_today_usd: Decimal | None = None
    spend_month_usd: Decimal | None = None
    alerts: AlertSettings = AlertSettings()
    raw: dict[str, Any] = raw_field()


@frozen
class RecordUsage:
    prompt_tokens: int | None = None
    input_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    estimated: bool = False


@frozen
class RecordCost:
    input_usd: Decimal | None = None
    output_usd: Decimal | None = None
    cache_usd: Decimal | None = None
    unit_usd: Decimal | None = None
    total_usd: Decimal | None = None


@frozen
class RouteAttempt:
    provider: str | None = None
    model: str | None = None
    status: int | None = None
    error: str | None = None
    raw: dict[str, Any] = raw_field()
    OPEN: ClassVar[bool] = True


@frozen
class UsageRecord:
    id: str = ""
    object: str = "usage.record"
    created_at: float | None = None
    account_id: str | None = None
    key_id: str | None = None
    app: str | None = None
    dialect: str | None = None
    endpoint: str | None = None
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    status: int | None = None
    error_type: str | None = None
    stream: bool = False
    usage: RecordUsage = RecordUsage()
    cost: RecordCost = RecordCost()
    latency_ms: float | None = None
    ttft_ms: float | None = None
    generation_ms: float | None = None
    tokens_per_s: float | None = None
    route: list[RouteAttempt] = listf()
    observability: bool = False
    payload: Any = None
    payload_expired: bool = False
    raw: dict[str, Any] = raw_field()


@frozen
class UsagePage:
    object: str = "list"
    data: list[UsageRecord] = listf()
    has_more: bool = False
    next_cursor: str | None = None


@frozen
class AggregateTokens:
    prompt: int = 0
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    total: int = 0


@frozen
class AggregateCost:
    input: Decimal | None = None
    output: Decimal | None = None
    cache: Decimal | None = None
    unit: Decimal | None = None
    total: Decimal | None = None


@frozen
class Percentiles:
    avg: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@frozen
class AggregateRow:
    group: dict[str, Any] = dictf()
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    tokens: AggregateTokens = AggregateTokens()
    estimated_requests: int = 0
    cost_usd: AggregateCost = AggregateCost()
    latency_ms: Percentiles = Percentiles()
    ttft_ms: Percentiles = Percentiles()
    tokens_per_s: float | None = None


@frozen
class PercentileInfo:
    method: str | None = None
    values_ranked: int | None = None


@frozen
class UsageAggregate:
    object: str = "usage.aggregate"
    group_by: list[str] = listf()
    from_: str | None = alias("from")
    to: str | None = None
    percentiles: PercentileInfo = PercentileInfo()
    data: list[AggregateRow] = listf()
    raw: dict[str, Any] = raw_field()
