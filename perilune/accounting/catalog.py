"""The model catalog: the shipped data file (real models and list prices) plus operator overrides."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from perilune.settings import ModelConfig, Settings, SettingsError

KINDS = ("chat", "embedding", "image", "transcription")
_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "per_image", "per_audio_minute")


@dataclass(frozen=True, slots=True)
class Price:
    """List prices in USD: per million tokens, per image, per audio minute. ``None`` = not priced."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    per_image: Decimal | None = None
    per_audio_minute: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    name: str
    vendor: str
    providers: tuple[str, ...]
    kind: str
    context: int | None
    max_output_tokens: int | None
    price: Price
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    supported_parameters: tuple[str, ...]
    reasoning: bool
    release_date: str | None
    description: str
    free_max_tokens: int = 0
    premium: bool = False
    discount_percentage: Decimal = Decimal(0)
    enabled: bool = True
    updated_at: str = ""
    max_dimensions: int | None = None  # embeddings: the largest `dimensions` the model can return

    @property
    def effective_price(self) -> Price:
        """List price after ``discount_percentage``."""
        if not self.discount_percentage:
            return self.price
        factor = (Decimal(100) - self.discount_percentage) / Decimal(100)
        return Price(**{f: (None if (v := getattr(self.price, f)) is None else v * factor)
                        for f in _PRICE_FIELDS})


@dataclass
class Catalog:
    models: dict[str, ModelInfo]
    checked: str
    extra_served: dict[str, set[str]] = field(default_factory=dict)  # provider -> extra model ids

    def get(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)


def _price(raw: dict[str, Any] | None) -> Price:
    raw = raw or {}
    return Price(**{f: (None if raw.get(f) is None else Decimal(str(raw[f]))) for f in _PRICE_FIELDS})


def load_shipped() -> dict[str, Any]:
    text = resources.files("perilune.data").joinpath("models.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _from_raw(m: dict[str, Any], stamp: str) -> ModelInfo:
    free = m.get("free") or {}
    return ModelInfo(
        id=m["id"],
        name=m.get("name") or m["id"],
        vendor=m.get("vendor") or "unknown",
        providers=tuple(m.get("providers") or ()),
        kind=m.get("kind") or "chat",
        context=m.get("context"),
        max_output_tokens=m.get("max_output_tokens"),
        price=_price(m.get("price")),
        input_modalities=tuple(m.get("input_modalities") or ("text",)),
        output_modalities=tuple(m.get("output_modalities") or ("text",)),
        supported_parameters=tuple(m.get("supported_parameters") or ()),
        reasoning=bool(m.get("reasoning")),
        release_date=m.get("release_date"),
        description=m.get("description") or "",
        free_max_tokens=int(free.get("max_tokens") or 0),
        premium=bool(free.get("premium")),
        updated_at=stamp,
        max_dimensions=m.get("max_dimensions"),
    )


def _apply(base: ModelInfo | None, model_id: str, o: ModelConfig) -> ModelInfo:
    if base is None:
        if not o.providers or o.price is None:
            raise SettingsError(f"models.{model_id}: not in the catalog, so `providers` and `price` are required")
        base = ModelInfo(
            id=model_id, name=o.name or model_id, vendor=o.vendor or "custom", providers=tuple(o.providers),
            kind=o.kind or "chat", context=o.context, max_output_tokens=o.max_output_tokens, price=Price(),
            input_modalities=("text",), output_modalities=("text",), supported_parameters=(),
            reasoning=False, release_date=None, description=o.description or "Operator-defined model.",
        )
    changes: dict[str, Any] = {}
    for name in ("name", "vendor", "kind", "context", "max_output_tokens", "reasoning", "description",
                 "enabled", "free_max_tokens", "premium", "discount_percentage", "max_dimensions"):
        value = getattr(o, name)
        if value is not None:
            changes[name] = value
    for name in ("providers", "input_modalities", "output_modalities", "supported_parameters"):
        value = getattr(o, name)
        if value is not None:
            changes[name] = tuple(value)
    if o.price is not None:
        changes["price"] = replace(base.price, **{f: getattr(o.price, f) for f in _PRICE_FIELDS
                                                  if getattr(o.price, f) is not None})
    return replace(base, **changes)


def build_catalog(settings: Settings, shipped: dict[str, Any] | None = None) -> Catalog:
    data = shipped if shipped is not None else load_shipped()
    stamp = str(data.get("checked") or datetime.now(UTC).date().isoformat())
    models = {m["id"]: _from_raw(m, stamp) for m in data["models"]}
    for model_id, override in settings.models.items():
        models[model_id] = _apply(models.get(model_id), model_id, override)
    extra: dict[str, set[str]] = {}
    for p in settings.providers:
        for model_id in p.models:
            if model_id not in models:
                raise SettingsError(f"providers[{p.name}].models: unknown model {model_id!r}; "
                                    f"add it under [models.\"{model_id}\"] with providers and price")
            extra.setdefault(p.name, set()).add(model_id)
    return Catalog(models=models, checked=stamp, extra_served=extra)


def _num(v: Decimal) -> float | int:
    return int(v) if v == v.to_integral_value() else float(v)


def public_entry(m: ModelInfo, *, enabled: bool, provider: str) -> dict[str, Any]:
    """A catalog model as ``GET /v1/models`` shows it (list prices; the discount is shown beside them)."""
    p = m.price
    price: dict[str, Any] = {
        "input": _num(p.input) if p.input is not None else None,
        "output": _num(p.output) if p.output is not None else None,
        "discountPercentage": _num(m.discount_percentage),
    }
    for key, value in (("cacheRead", p.cache_read), ("cacheWrite", p.cache_write), ("perImage", p.per_image),
                       ("perAudioMinute", p.per_audio_minute)):
        if value is not None:
            price[key] = _num(value)
    created = None
    if m.release_date:
        with contextlib.suppress(ValueError):
            created = int(datetime.fromisoformat(m.release_date).replace(tzinfo=UTC).timestamp())
    return {
        "id": m.id,
        "object": "model",
        "created": created,
        "owned_by": m.vendor,
        "modelId": m.id,
        "permaslug": f"{m.vendor}/{m.id}",
        "name": m.name,
        "provider": provider,
        "parameters": {"context": m.context, "max_output_tokens": m.max_output_tokens},
        "pricePerMillionTokens": price,
        "supportedParameters": list(m.supported_parameters),
        "inputModalities": list(m.input_modalities),
        "outputModalities": list(m.output_modalities),
        "description": m.description,
        "freeConfig": {"maxTokens": m.free_max_tokens, "isPremium": m.premium},
        "isEnabled": enabled,
        "supportReasoning": m.reasoning,
        "maxCompletionTokens": m.max_output_tokens,
        "avgThroughput": None,  # tokens/s measured live (GET /v1/models fills it in; perilune.api.providers)
        "releaseDate": m.release_date,
        "createdAt": m.release_date,
        "updatedAt": m.updated_at,
    }
