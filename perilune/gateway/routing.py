"""Model id -> ordered deployments: aliases, provider pin or preferences, routing policy, model
fallbacks, health.

``Router.resolve`` gives the deployments of one model in configured order (what callers that serve a
single model use); ``Router.plan`` gives everything a request may try, across its fallback models:

1. the requested id through ``[aliases]`` (to a model, or to a ``provider/model`` pin);
2. per model, its providers filtered by the request's ``provider`` (a pin, or ``only``/``ignore``/
   ``order``/``allow_fallbacks``) and ordered by its policy (``order`` = config order, ``price``,
   ``latency`` = live TTFT, ``throughput`` = live tokens/s, ``weighted``) or the request's ``sort``;
3. the requested model, then each fallback (the request's ``fallbacks``/``fallback_model``, else
   ``[models.X] fallbacks``), skipping fallbacks whose known context cannot hold the prompt;
4. deployments whose breaker is open moved last (tried only if everything else failed).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from perilune.accounting.catalog import Catalog, ModelInfo, Price
from perilune.errors import InvalidRequest, NotFound, PeriluneError, ProviderNotConfigured, Unsupported
from perilune.gateway.resilience import Health
from perilune.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, IMAGES, TRANSCRIPTIONS, Adapter, Provider
from perilune.providers.registry import ADAPTERS
from perilune.schema.routing import ProviderPrefs
from perilune.settings import PriceConfig, Settings, SettingsError

# Which catalog kinds can serve each operation.
KINDS_FOR = {
    CHAT: ("chat",),
    COMPLETIONS: ("chat",),
    EMBEDDINGS: ("embedding",),
    IMAGES: ("image",),
    TRANSCRIPTIONS: ("transcription",),
}
OP_NAMES = {CHAT: "chat completions", COMPLETIONS: "completions", EMBEDDINGS: "embeddings",
            IMAGES: "image generation", TRANSCRIPTIONS: "audio transcription"}
INF = float("inf")


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: Provider
    adapter: Adapter
    model: ModelInfo
    price_override: Price | None = None  # this provider's own price for the model ([[providers]] prices)

    @property
    def upstream_model(self) -> str:
        return self.provider.upstream_model(self.model.id)

    @property
    def price(self) -> Price:
        """What this deployment charges: the provider's price for the model, else the catalog's."""
        return self.price_override or self.model.effective_price


@dataclass(frozen=True, slots=True)
class ModelRouting:
    """`[models.X]` routing settings."""

    policy: str = "order"
    fallbacks: tuple[str, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    hedge: bool = False


class Plan(list[Deployment]):
    """The deployments a request may try, in order, across its models."""

    __slots__ = ("alias", "hedge", "requested")

    def __init__(self, items: Sequence[Deployment], requested: str, alias: str | None, hedge: bool) -> None:
        super().__init__(items)
        self.requested = requested  # the id the client sent
        self.alias = alias  # what [aliases] resolved it to, when it was an alias
        self.hedge = hedge


def _price_of(p: PriceConfig) -> Price:
    return Price(input=p.input, output=p.output, cache_read=p.cache_read, cache_write=p.cache_write,
                 per_image=p.per_image, per_audio_minute=p.per_audio_minute)


class Router:
    def __init__(self, catalog: Catalog, providers: dict[str, Provider], *, settings: Settings | None = None,
                 health: Health | None = None, rng: random.Random | None = None) -> None:
        self.catalog = catalog
        self.providers = providers
        self.health = health
        self.rng = rng or random.Random()
        self._serving: dict[str, list[str]] = {}  # model id -> provider names that list it, in order
        for m in catalog:
            names = list(m.providers)
            for pname, extra in catalog.extra_served.items():
                if m.id in extra and pname not in names:
                    names.append(pname)
            self._serving[m.id] = names
        self._cache: dict[tuple[str, str | None, str], list[Deployment]] = {}
        self.aliases: dict[str, str] = {}
        self.routing: dict[str, ModelRouting] = {}
        self._prices: dict[tuple[str, str], Price] = {}
        if settings is not None:
            self._configure(settings)

    def _configure(self, settings: Settings) -> None:
        for pc in settings.providers:
            for model_id, price in pc.prices.items():
                if model_id not in self.catalog.models:
                    raise SettingsError(f"providers[{pc.name}].prices: unknown model {model_id!r}")
                self._prices[(pc.name, model_id)] = _price_of(price)
        for model_id, mc in settings.models.items():
            fallbacks = tuple(mc.fallbacks or ())
            for fb in fallbacks:
                if fb not in self.catalog.models:
                    raise SettingsError(f"models.{model_id}.fallbacks: unknown model {fb!r}")
            for pname in mc.weights or {}:
                if pname not in self._serving.get(model_id, ()):
                    raise SettingsError(f"models.{model_id}.weights: {pname!r} does not serve this model")
            self.routing[model_id] = ModelRouting(policy=mc.routing or "order", fallbacks=fallbacks,
                                                  weights=dict(mc.weights or {}), hedge=bool(mc.hedge))
        for alias, target in settings.aliases.items():
            prefix, slash, rest = target.partition("/")
            model_id = rest if slash and prefix in self.providers else target
            if model_id not in self.catalog.models:
                raise SettingsError(f"aliases.{alias}: the target {target!r} is not a catalog model"
                                    + (f" (nor '{prefix}' a configured provider)" if slash else ""))
            self.aliases[alias] = target

    # ---- one model ------------------------------------------------------------------------------

    def serving(self, model: ModelInfo) -> list[Provider]:
        return [self.providers[n] for n in self._serving.get(model.id, ()) if n in self.providers]

    def models_of(self, provider: str) -> list[str]:
        """The catalog ids ``provider`` serves (enabled ones)."""
        return [mid for mid, names in self._serving.items() if provider in names
                if (m := self.catalog.get(mid)) is not None and m.enabled]

    def price(self, provider: str, model: ModelInfo) -> Price:
        """``provider``'s price for ``model`` (its own, else the catalog's)."""
        return self._prices.get((provider, model.id)) or model.effective_price

    def is_available(self, model: ModelInfo) -> bool:
        return model.enabled and any(p.ready for p in self.serving(model))

    def resolve(self, requested: str, op: str, forced: str | ProviderPrefs | None = None) -> list[Deployment]:
        """The deployments of one model (aliases applied), in configured order (``provider`` objects
        filter and order them; no fallback models, no health)."""
        if isinstance(forced, ProviderPrefs):
            return list(self.plan(requested, op, forced, fallbacks=(), use_health=False))
        key = (requested, forced, op)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        model, pinned = self._model(self.aliases.get(requested, requested), requested, forced, "model")
        deployments = self._deployments(model, op, pinned)
        if len(self._cache) < 10_000:
            self._cache[key] = deployments
        return deployments

    def _model(self, target: str, requested: str, forced: str | None, param: str) -> tuple[ModelInfo, str | None]:
        """The catalog model ``target`` names (``provider/model`` pins the provider)."""
        model_id, pinned = target, forced
        prefix, slash, rest = target.partition("/")
        if slash and prefix in self.providers and rest:
            if forced and forced != prefix:
                raise InvalidRequest(f"The model pins provider '{prefix}' but 'provider' asks for '{forced}'.",
                                     param="provider")
            model_id, pinned = rest, prefix
        if pinned is not None and pinned not in self.providers:
            raise InvalidRequest(f"Unknown provider '{pinned}'. Configured: {', '.join(sorted(self.providers))}.",
                                 param="provider", code="unknown_provider")
        model = self.catalog.get(model_id)
        if model is None:
            raise NotFound(f"The model '{requested}' does not exist or you do not have access to it.",
                           param=param, code="model_not_found")
        if not model.enabled:
            raise NotFound(f"The model '{requested}' is disabled on this gateway.", param=param,
                           code="model_disabled")
        return model, pinned

    def _deployments(self, model: ModelInfo, op: str, pinned: str | None, param: str = "model") -> list[Deployment]:
        if model.kind not in KINDS_FOR[op]:
            raise InvalidRequest(f"The model '{model.id}' is a {model.kind} model and cannot serve "
                                 f"{OP_NAMES[op]}.", param=param, code="wrong_model_kind")
        names = self._serving.get(model.id, [])
        if pinned is not None:
            if pinned not in names:
                raise NotFound(f"The model '{model.id}' is not served by provider '{pinned}' "
                               f"(it is served by: {', '.join(names) or 'nobody'}).", param=param,
                               code="model_not_found")
            names = [pinned]
        candidates = [self.providers[n] for n in names if n in self.providers]
        ready = [p for p in candidates if p.ready]
        if not ready:
            raise ProviderNotConfigured(_not_configured(model.id, names, candidates), param=param)
        out = [Deployment(p, ADAPTERS[p.type], model, self._prices.get((p.name, model.id)))
               for p in ready if op in ADAPTERS[p.type].supports]
        if not out:
            raise Unsupported(f"No provider of '{model.id}' supports {OP_NAMES[op]}.", param=param)
        return out

    # ---- a request's plan -----------------------------------------------------------------------

    def plan(self, requested: str, op: str, provider: str | ProviderPrefs | None = None,
             fallbacks: Sequence[str] | None = None, *, prompt_tokens: int | None = None,
             hedge: bool | None = None, use_health: bool = True) -> Plan:
        """Every deployment the request may try, in order. ``fallbacks`` None = the model's configured
        ones; ``()`` = none. A pin (string ``provider`` or ``provider/model``) holds for the requested
        model only."""
        prefs = provider if isinstance(provider, ProviderPrefs) else None
        if prefs is not None:
            check_prefs(prefs, self.providers)
        forced = provider if isinstance(provider, str) else None
        alias = self.aliases.get(requested)
        primary, pinned = self._model(alias or requested, requested, forced, "model")
        config = self.routing.get(primary.id) or ModelRouting()
        chain: list[tuple[ModelInfo, str | None, str]] = [(primary, pinned, "model")]
        if fallbacks is None:
            names: Sequence[str] = config.fallbacks
            params = [f"models.{primary.id}.fallbacks" for _ in names]
        else:
            names = fallbacks
            params = [f"fallbacks[{i}]" for i in range(len(names))]
        seen = {primary.id}
        for name, param in zip(names, params, strict=True):
            m, pin = self._model(self.aliases.get(name, name), name, None, param)
            if m.id in seen:
                continue
            seen.add(m.id)
            if prompt_tokens is not None and m.context is not None and m.context < prompt_tokens:
                continue  # its context cannot hold the prompt
            chain.append((m, pin, param))
        out: list[Deployment] = []
        first_error: PeriluneError | None = None
        for i, (m, pin, param) in enumerate(chain):
            try:
                ds = self._deployments(m, op, pin, param)
            except (ProviderNotConfigured, Unsupported) as e:
                first_error = first_error or e
                continue
            except InvalidRequest:
                if i == 0:
                    raise
                continue  # a fallback of another kind (e.g. an embedding model) cannot serve this op
            if prefs is not None:
                ds = _filter(ds, prefs)
            out.extend(self._order(ds, prefs, self.routing.get(m.id) or ModelRouting()))
        if not out:
            if first_error is not None:
                raise first_error
            raise InvalidRequest(f"No provider of '{primary.id}' is left after the request's provider "
                                 "preferences (provider.only / provider.ignore).", param="provider")
        if use_health and self.health is not None:
            health = self.health
            out = [d for d in out if health.available(d)] + [d for d in out if not health.available(d)]
        return Plan(out, requested, alias, config.hedge if hedge is None else hedge)

    def _order(self, ds: list[Deployment], prefs: ProviderPrefs | None, config: ModelRouting) -> list[Deployment]:
        policy = (prefs.sort if prefs is not None and prefs.sort else None) or config.policy
        if len(ds) > 1 and policy != "order":
            ds = self._sorted(ds, policy, config)
        if prefs is not None and prefs.order:
            rank = {name: i for i, name in enumerate(prefs.order)}
            first = sorted((d for d in ds if d.provider.name in rank), key=lambda d: rank[d.provider.name])
            rest = [d for d in ds if d.provider.name not in rank]
            ds = first + (rest if prefs.allow_fallbacks else [])
        elif prefs is not None and not prefs.allow_fallbacks:
            ds = ds[:1]
        return ds

    def _sorted(self, ds: list[Deployment], policy: str, config: ModelRouting) -> list[Deployment]:
        health = self.health
        if policy == "price":
            return sorted(ds, key=_price_key)
        if policy == "weighted":  # weighted random order (Efraimidis-Spirakis keys u ** (1 / w))
            rng = self.rng
            keyed = [(rng.random() ** (1.0 / config.weights.get(d.provider.name, 1.0)), i)
                     for i, d in enumerate(ds)]
            return [ds[i] for _, i in sorted(keyed, reverse=True)]
        if health is None:
            return ds
        if policy == "latency":  # live TTFT p50 (latency p50 for non-streamed traffic); unmeasured first
            def latency(d: Deployment) -> float:
                v = health.ttft_ms(d)
                if v is None:
                    v = health.stats(d).latency_ms.quantile(health.clock(), 0.5)
                return -1.0 if v is None else v
            return sorted(ds, key=latency)
        if policy == "throughput":  # live tokens/s, highest first; unmeasured first
            def speed(d: Deployment) -> float:
                v = health.throughput_tps(d)
                return -INF if v is None else -v
            return sorted(ds, key=speed)
        return ds


def _filter(ds: list[Deployment], prefs: ProviderPrefs) -> list[Deployment]:
    if prefs.only:
        only = set(prefs.only)
        ds = [d for d in ds if d.provider.name in only]
    if prefs.ignore:
        ignore = set(prefs.ignore)
        ds = [d for d in ds if d.provider.name not in ignore]
    return ds


def _price_key(d: Deployment) -> tuple[int, object]:
    p = d.price
    if p.input is None and p.output is None and p.per_image is None and p.per_audio_minute is None:
        return (1, 0)  # unpriced last
    return (0, (p.input or 0) + (p.output or 0) + (p.per_image or 0) + (p.per_audio_minute or 0))


def check_prefs(prefs: ProviderPrefs, providers: Mapping[str, Provider]) -> None:
    """Names in a ``provider`` object must be configured providers (400 naming the entry)."""
    for fname in ("order", "only", "ignore"):
        for i, name in enumerate(getattr(prefs, fname) or ()):
            if name not in providers:
                raise InvalidRequest(f"Unknown provider '{name}' in provider.{fname}. Configured: "
                                     f"{', '.join(sorted(providers))}.", param=f"provider.{fname}[{i}]",
                                     code="unknown_provider")


def _not_configured(model_id: str, names: list[str], candidates: list[Provider]) -> str:
    missing = [f"{p.name} (set {p.api_key_env})" for p in candidates if not p.ready and p.api_key_env]
    unconfigured = [n for n in names if n not in {p.name for p in candidates}]
    parts = []
    if missing:
        parts.append("its provider has no API key: " + ", ".join(missing))
    if unconfigured:
        parts.append("no configured provider serves it; add one of: " + ", ".join(unconfigured))
    return f"The model '{model_id}' cannot be served: " + "; ".join(parts) + "."
