"""Catalog, providers, balance and usage-log objects (re-exported by :mod:`perilune_sdk.types`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from perilune_sdk._convert import alias, dictf, listf, raw_field

frozen = dataclass(frozen=True, slots=True)


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
    type: str | None = None  # the provider's dialect: openai, anthropic, gemini, ...
    upstream_model: str | None = None
    status: str | None = None  # ok, degraded or down
    ready: bool | None = None
    price: dict[str, Any] | None = None  # the catalog price ("unit" says of what)
    context: int | None = None
    max_output_tokens: int | None = None
    latency_ms_p50: float | None = None
    ttft_ms_p50: float | None = None
    ttft_ms_p95: float | None = None
    throughput_tps: float | None = None
    error_rate: float | None = None
    requests: int | None = None
    breaker: str | None = None  # closed, open or half_open
    raw: dict[str, Any] = raw_field()


@frozen
class ModelProviders:
    model: str = ""
    served_model: str | None = None  # the catalog model an alias points to (the model itself otherwise)
    providers: list[ProviderHealth] = listf()
    raw: dict[str, Any] = raw_field()


@frozen
class ProviderInfo:
    """A configured provider and the models it serves."""

    provider: str = ""
    type: str | None = None
    ready: bool | None = None
    models: list[str] = listf()
    raw: dict[str, Any] = raw_field()


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
    charged_usd: Decimal | None = None  # what the balance was charged


@frozen
class RouteAttempt:
    provider: str | None = None
    model: str | None = None
    status: int | None = None
    error: str | None = None


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
