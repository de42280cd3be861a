"""Model id -> ordered deployments (provider pin, catalog providers, fallbacks)."""

from __future__ import annotations

from dataclasses import dataclass

from perilune.accounting.catalog import Catalog, ModelInfo
from perilune.errors import InvalidRequest, NotFound, ProviderNotConfigured, Unsupported
from perilune.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, IMAGES, TRANSCRIPTIONS, Adapter, Provider
from perilune.providers.registry import ADAPTERS

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


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: Provider
    adapter: Adapter
    model: ModelInfo

    @property
    def upstream_model(self) -> str:
        return self.provider.upstream_model(self.model.id)


class Router:
    def __init__(self, catalog: Catalog, providers: dict[str, Provider]) -> None:
        self.catalog = catalog
        self.providers = providers
        self._serving: dict[str, list[str]] = {}  # model id -> provider names that list it, in order
        for m in catalog:
            names = list(m.providers)
            for pname, extra in catalog.extra_served.items():
                if m.id in extra and pname not in names:
                    names.append(pname)
            self._serving[m.id] = names
        self._cache: dict[tuple[str, str | None, str], list[Deployment]] = {}

    def serving(self, model: ModelInfo) -> list[Provider]:
        return [self.providers[n] for n in self._serving.get(model.id, ()) if n in self.providers]

    def is_available(self, model: ModelInfo) -> bool:
        return model.enabled and any(p.ready for p in self.serving(model))

    def resolve(self, requested: str, op: str, forced: str | None = None) -> list[Deployment]:
        key = (requested, forced, op)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        deployments = self._resolve(requested, op, forced)
        if len(self._cache) < 10_000:
            self._cache[key] = deployments
        return deployments

    def _resolve(self, requested: str, op: str, forced: str | None) -> list[Deployment]:
        model_id, pinned = requested, forced
        prefix, slash, rest = requested.partition("/")
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
                           param="model", code="model_not_found")
        if not model.enabled:
            raise NotFound(f"The model '{requested}' is disabled on this gateway.", param="model",
                           code="model_disabled")
        if model.kind not in KINDS_FOR[op]:
            raise InvalidRequest(f"The model '{model_id}' is a {model.kind} model and cannot serve "
                                 f"{OP_NAMES[op]}.", param="model", code="wrong_model_kind")
        names = self._serving.get(model.id, [])
        if pinned is not None:
            if pinned not in names:
                raise NotFound(f"The model '{model_id}' is not served by provider '{pinned}' "
                               f"(it is served by: {', '.join(names) or 'nobody'}).", param="model",
                               code="model_not_found")
            names = [pinned]
        candidates = [self.providers[n] for n in names if n in self.providers]
        ready = [p for p in candidates if p.ready]
        if not ready:
            raise ProviderNotConfigured(_not_configured(model_id, names, candidates), param="model")
        out = []
        for p in ready:
            adapter = ADAPTERS[p.type]
            if op not in adapter.supports:
                continue
            out.append(Deployment(p, adapter, model))
        if not out:
            raise Unsupported(f"No provider of '{model_id}' supports {OP_NAMES[op]}.", param="model")
        return out


def _not_configured(model_id: str, names: list[str], candidates: list[Provider]) -> str:
    missing = [f"{p.name} (set {p.api_key_env})" for p in candidates if not p.ready and p.api_key_env]
    configured = {p.name for p in candidates}
    unconfigured = [_how_to_add(n) for n in names if n not in configured]
    parts = []
    if missing:
        parts.append("its provider has no API key: " + ", ".join(missing))
    if unconfigured:
        parts.append("no configured provider serves it; add one of: " + ", ".join(unconfigured))
    return f"The model '{model_id}' cannot be served: " + "; ".join(parts) + "."


def _how_to_add(name: str) -> str:
    """A provider by name, with the environment variable that enables a known one."""
    from perilune.providers.registry import PRESETS

    preset = PRESETS.get(name)
    return f"{name} (set {preset.api_key_env})" if preset is not None and preset.api_key_env else name
