"""The providers' health, fallbacks, the semantic router, feedback and the Responses API. The testbed maps
two router profiles to simulator models (router.aliases), so the router can also execute."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import HI, unique, wait_records

import perilune_sdk as p
from perilune_sdk import Perilune

QUESTION = [{"role": "user", "content": "What is the derivative of x**3 * sin(x)? Show the steps."}]


def test_providers_list_and_per_model(client: Perilune) -> None:
    every = client.providers.list()
    assert "sim" in {x.provider for x in every}
    one = client.providers.for_model("sim-gpt")
    assert one.model == "sim-gpt" and one.providers
    h = one.providers[0]
    assert h.provider == "sim" and h.status in ("ok", "degraded", "down") and h.upstream_model
    assert h.ready is True and h.type == "openai" and h.context == 128000
    assert h.breaker in ("closed", "open", "half_open")
    assert h.price is not None and h.price["unit"] == "USD per million tokens"
    assert one.served_model == "sim-gpt"
    for name in ("latency_ms_p50", "ttft_ms_p50", "throughput_tps", "error_rate", "requests"):
        assert name in h.raw, name
    with pytest.raises(p.NotFoundError) as e:
        client.providers.for_model("no-such-model")
    assert e.value.param == "model"


def test_fallbacks_and_fallback_model_are_accepted(client: Perilune) -> None:
    """Only that the gateway takes both fields and serves the healthy primary (failover itself is the
    gateway's suite's business: it needs a failing upstream per model)."""
    app = unique("fallbacks")
    r = client.chat.create(model="sim-gpt", messages=HI, fallbacks=["sim-claude"], app_id=app)
    assert r.model == "sim-gpt" and r.provider == "sim"
    m = client.messages.create(model="sim-claude", max_tokens=8, messages=HI, fallback_model="sim-gpt", app_id=app)
    assert m.model == "sim-claude"
    assert {rec.model_served for rec in wait_records(client, 2, app=app)} == {"sim-gpt", "sim-claude"}


def test_router_decision_only(client: Perilune) -> None:
    cheap = client.router.decide(messages=QUESTION, cost_weight=0)
    assert cheap.model and cheap.candidates and cheap.routing_ms is not None
    for c in cheap.candidates:
        assert c.model and c.predicted_quality is not None and 0 <= c.predicted_quality <= 1
        assert isinstance(c.expected_cost_usd, Decimal) and c.score is not None
    assert cheap.model == min(cheap.candidates, key=lambda c: c.score or 0).model
    assert cheap.embedder and cheap.cost_weight == 0 and cheap.object == "router.decision"
    assert cheap.cluster is not None and cheap.cluster.k and cheap.cluster.index is not None
    assert all(c.expected_cost_pusd is not None and c.servable is not None for c in cheap.candidates)
    with pytest.raises(p.InvalidRequestError) as e:
        client.router.decide(messages=QUESTION, cost_weight=-1)
    assert e.value.param == "cost_weight"


def test_router_execute_and_stream(client: Perilune) -> None:
    r = client.router.create(messages=HI, max_tokens=8)
    assert r.router is not None and r.router.model and r.text and r.usage and r.usage.total_cost_usd is not None
    assert r.router.served_model in ("sim-gpt", "sim-claude") and r.model == r.router.served_model
    s = client.router.stream(messages=HI, max_tokens=8).until_done()
    assert s.text and s.usage is not None and s.routed_model


def test_router_profiles(client: Perilune) -> None:
    profiles = client.router.profiles()
    assert len(profiles.data) >= 2 and profiles.embedder and profiles.provenance
    for x in profiles.data:
        assert x.id and len(x.quality) == profiles.clusters and all(0 <= q <= 1 for q in x.quality)
        assert isinstance(x.mean_cost_usd, Decimal) and x.validation_size
    assert {x.id for x in profiles.data if x.servable} >= {"mistralai/mistral-7b-chat", "gpt-4-1106-preview"}


def test_feedback(client: Perilune) -> None:
    app = unique("feedback")
    client.chat.create(model="sim-gpt", messages=HI, app_id=app)
    (rec,) = wait_records(client, 1, app=app)
    fb = client.feedback.create(request_id=rec.id, score=0.75)
    assert fb.object == "feedback" and fb.request_id == rec.id and fb.score == 0.75
    with pytest.raises(p.InvalidRequestError) as e:
        client.feedback.create(request_id=rec.id, score=2)
    assert e.value.param == "score"


def test_responses_create_stream_retrieve(client: Perilune) -> None:
    r = client.responses.create(model="sim-gpt", input="Say hello", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed" and r.output_text
    assert r.usage is not None and r.usage.total_cost_usd is not None and r.usage.ttft_ms is not None
    with client.responses.stream(model="sim-gpt", input="Say hello") as s:
        kinds = [e.type for e in s]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-1] == "response.completed" and s.response_object is not None and s.text
    again = client.responses.retrieve(r.id)
    assert again.id == r.id and again.output_text == r.output_text
    assert client.responses.input_items(r.id)
    client.responses.delete(r.id)
    with pytest.raises(p.NotFoundError):
        client.responses.retrieve(r.id)
