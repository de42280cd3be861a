"""Router.plan: aliases, provider preferences, policies, model fallbacks, context fit, health."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from perilune.accounting.catalog import build_catalog
from perilune.errors import InvalidRequest, NotFound, ProviderNotConfigured
from perilune.gateway.resilience import BreakerPolicy, Health, HealthPolicy
from perilune.gateway.routing import Router
from perilune.providers.base import CHAT, EMBEDDINGS
from perilune.providers.registry import build_providers
from perilune.schema.routing import ProviderPrefs
from perilune.settings import PriceConfig, Settings, SettingsError, load_settings

SHIPPED: dict[str, Any] = {"checked": "2026-12-01", "models": [
    {"id": "big", "providers": ["a", "b", "c"], "kind": "chat", "context": 200_000,
     "price": {"input": 3, "output": 15}},
    {"id": "small", "providers": ["b"], "kind": "chat", "context": 8_000, "price": {"input": 1, "output": 2}},
    {"id": "mid", "providers": ["c"], "kind": "chat", "context": 32_000, "price": {"input": 2, "output": 4}},
    {"id": "emb", "providers": ["a"], "kind": "embedding", "price": {"input": 0.1}},
    {"id": "nokey", "providers": ["k"], "kind": "chat", "price": {"input": 1, "output": 1}},
]}


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def settings(**extra: Any) -> Settings:
    providers = [{"name": n, "base_url": f"http://127.0.0.1:1/{n}"} for n in "abc"]
    providers.append({"name": "k", "base_url": "http://127.0.0.1:1/k", "api_key_env": "UNSET_KEY_FOR_TEST"})
    return load_settings(environ={}, overrides={"providers": providers, **extra})


def router(s: Settings | None = None, health: Health | None = None, seed: int = 1) -> Router:
    s = s or settings()
    return Router(build_catalog(s, SHIPPED), build_providers(s, {}), settings=s, health=health,
                  rng=random.Random(seed))


def names(plan: list[Any]) -> list[str]:
    return [f"{d.provider.name}/{d.model.id}" for d in plan]


def test_plan_in_config_order_then_fallbacks() -> None:
    r = router()
    assert names(r.plan("big", CHAT)) == ["a/big", "b/big", "c/big"]
    assert names(r.plan("big", CHAT, fallbacks=["mid", "small"])) == ["a/big", "b/big", "c/big", "c/mid", "b/small"]
    assert names(r.plan("small", CHAT, fallbacks=["small", "big", "big"])) == ["b/small", "a/big", "b/big", "c/big"]


def test_config_fallbacks_are_the_default_and_a_request_replaces_them() -> None:
    r = router(settings(models={"small": {"fallbacks": ["mid"]}}))
    assert names(r.plan("small", CHAT)) == ["b/small", "c/mid"]
    assert names(r.plan("small", CHAT, fallbacks=[])) == ["b/small"]
    assert names(r.plan("small", CHAT, fallbacks=["big"])) == ["b/small", "a/big", "b/big", "c/big"]


def test_unknown_fallback_is_a_400_naming_it() -> None:
    with pytest.raises(NotFound) as e:
        router().plan("big", CHAT, fallbacks=["mid", "nope"])
    assert e.value.param == "fallbacks[1]"
    with pytest.raises(SettingsError, match=r"models\.small\.fallbacks"):
        router(settings(models={"small": {"fallbacks": ["nope"]}}))


def test_fallbacks_that_cannot_serve_are_skipped_and_context_must_fit() -> None:
    r = router()
    assert names(r.plan("mid", CHAT, fallbacks=["emb", "nokey", "small"])) == ["c/mid", "b/small"]
    # a 20k-token prompt does not fit small (8k): only the models with room remain as fallbacks
    assert names(r.plan("mid", CHAT, fallbacks=["small", "big"], prompt_tokens=20_000)) == \
        ["c/mid", "a/big", "b/big", "c/big"]
    with pytest.raises(ProviderNotConfigured):
        r.plan("nokey", CHAT, fallbacks=[])
    assert names(r.plan("nokey", CHAT, fallbacks=["small"])) == ["b/small"]  # primary unservable


def test_provider_pin_and_object_preferences() -> None:
    r = router()
    assert names(r.plan("big", CHAT, "b", fallbacks=["mid"])) == ["b/big", "c/mid"]  # a pin: this model only
    assert names(r.plan("b/big", CHAT)) == ["b/big"]
    prefs = ProviderPrefs(order=["c", "a"])
    assert names(r.plan("big", CHAT, prefs)) == ["c/big", "a/big", "b/big"]
    assert names(r.plan("big", CHAT, ProviderPrefs(order=["c"], allow_fallbacks=False))) == ["c/big"]
    assert names(r.plan("big", CHAT, ProviderPrefs(allow_fallbacks=False))) == ["a/big"]
    assert names(r.plan("big", CHAT, ProviderPrefs(only=["b", "c"], ignore=["c"]))) == ["b/big"]
    assert names(r.plan("big", CHAT, ProviderPrefs(ignore=["a", "b"]), fallbacks=["small", "mid"])) == \
        ["c/big", "c/mid"]  # preferences hold for the fallbacks too
    with pytest.raises(InvalidRequest) as e:
        r.plan("big", CHAT, ProviderPrefs(only=["zz"]))
    assert e.value.param == "provider.only[0]"
    with pytest.raises(InvalidRequest) as e:
        r.plan("big", CHAT, ProviderPrefs(ignore=["a", "b", "c"]), fallbacks=[])
    assert e.value.param == "provider"


def test_price_policy_uses_the_providers_own_price() -> None:
    s = settings(models={"big": {"routing": "price"}})
    s.providers[2].prices["big"] = msgspec.convert({"input": "1", "output": "5"}, PriceConfig)
    r = router(s)
    plan = r.plan("big", CHAT)
    assert names(plan) == ["c/big", "a/big", "b/big"]
    assert plan[0].price.output == Decimal("5") and plan[1].price.output == Decimal("15")
    # per request: sort overrides the model's policy
    assert names(r.plan("big", CHAT, ProviderPrefs(sort="price"))) == ["c/big", "a/big", "b/big"]


def test_latency_and_throughput_policies_follow_live_figures() -> None:
    clock = Clock()
    h = Health(clock=clock)
    r = router(settings(models={"big": {"routing": "latency"}}), health=h)
    plan = r.plan("big", CHAT)
    by = {d.provider.name: d for d in plan}
    for _ in range(5):
        h.report(by["a"], True, ttft_ms=300.0, tokens_per_s=50.0)
        h.report(by["b"], True, ttft_ms=100.0, tokens_per_s=20.0)
        h.report(by["c"], True, ttft_ms=200.0, tokens_per_s=90.0)
    clock.t += 1.0
    assert names(r.plan("big", CHAT)) == ["b/big", "c/big", "a/big"]
    assert names(r.plan("big", CHAT, ProviderPrefs(sort="throughput"))) == ["c/big", "a/big", "b/big"]


def test_weighted_policy_follows_the_weights() -> None:
    r = router(settings(models={"big": {"routing": "weighted", "weights": {"a": 8, "b": 1, "c": 1}}}), seed=42)
    firsts = [r.plan("big", CHAT)[0].provider.name for _ in range(2000)]
    share = firsts.count("a") / len(firsts)
    assert 0.72 < share < 0.88  # 8 / 10 expected
    assert {"b", "c"} <= set(firsts)
    with pytest.raises(SettingsError, match="weights"):
        router(settings(models={"big": {"routing": "weighted", "weights": {"zz": 1}}}))


def test_open_breakers_move_last_across_models() -> None:
    clock = Clock()
    h = Health(HealthPolicy(breaker=BreakerPolicy(failures=1, cooldown_s=10.0)), clock)
    r = router(health=h)
    a = r.plan("big", CHAT)[0]
    h.report(a, False, status=502)
    assert names(r.plan("big", CHAT, fallbacks=["small"])) == ["b/big", "c/big", "b/small", "a/big"]
    assert names(r.resolve("big", CHAT)) == ["a/big", "b/big", "c/big"]  # resolve: config order, no health
    clock.t += 10.0  # cooldown over: half-open, the probe may go, so it is back in place
    assert names(r.plan("big", CHAT)) == ["a/big", "b/big", "c/big"]


def test_aliases_resolve_before_routing() -> None:
    r = router(settings(aliases={"claude-opus-4-8": "big", "cheap": "b/big", "tiny": "small"}))
    plan = r.plan("claude-opus-4-8", CHAT)
    assert names(plan) == ["a/big", "b/big", "c/big"]
    assert plan.requested == "claude-opus-4-8" and plan.alias == "big"
    assert names(r.plan("cheap", CHAT)) == ["b/big"]
    assert names(r.plan("big", CHAT, fallbacks=["tiny"])) == ["a/big", "b/big", "c/big", "b/small"]
    assert names(r.resolve("cheap", CHAT)) == ["b/big"]
    assert r.plan("big", CHAT).alias is None
    with pytest.raises(SettingsError, match=r"aliases\.x"):
        router(settings(aliases={"x": "nope"}))


def test_hedge_from_config_or_request() -> None:
    r = router(settings(models={"big": {"hedge": True}}))
    assert r.plan("big", CHAT).hedge is True
    assert r.plan("big", CHAT, hedge=False).hedge is False
    assert r.plan("small", CHAT).hedge is False
    assert r.plan("small", CHAT, hedge=True).hedge is True


def test_wrong_kind_primary_is_still_an_error() -> None:
    with pytest.raises(InvalidRequest) as e:
        router().plan("emb", CHAT)
    assert e.value.code == "wrong_model_kind"
    assert names(router().plan("emb", EMBEDDINGS)) == ["a/emb"]
