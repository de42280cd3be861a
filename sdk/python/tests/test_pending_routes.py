"""Routes that gateway issues in progress add. Each test is marked with its route and issue: it is
skipped, saying so, while the gateway's /openapi.json lacks the route, and must pass once it has it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import HI, unique, wait_records

import perilune_sdk as p
from perilune_sdk import Perilune

QUESTION = [{"role": "user", "content": "What is the derivative of x**3 * sin(x)? Show the steps."}]


@pytest.mark.route("/v1/providers", issue=9)
def test_providers_list_and_per_model(client: Perilune) -> None:
    every = client.providers.list()
    assert "sim" in {x.provider for x in every}
    one = client.providers.for_model("sim-gpt")
    assert one.model == "sim-gpt" and one.providers
    h = one.providers[0]
    assert h.provider == "sim" and h.status in ("ok", "degraded", "down") and h.upstream_model
    for name in ("price", "context", "latency_ms_p50", "ttft_ms_p50", "throughput_tps", "error_rate", "requests"):
        assert name in h.raw, name
    with pytest.raises(p.NotFoundError) as e:
        client.providers.for_model("no-such-model")
    assert e.value.param == "model"


@pytest.mark.route("/v1/chat/completions", issue=9, field="fallbacks")
def test_fallbacks_and_fallback_model_are_accepted(client: Perilune) -> None:
    """Only that the gateway takes both fields and serves the healthy primary (failover itself is the
    gateway's suite's business: it needs a failing upstream per model)."""
    app = unique("fallbacks")
    r = client.chat.create(model="sim-gpt", messages=HI, fallbacks=["sim-claude"], app_id=app)
    assert r.model == "sim-gpt" and r.provider == "sim"
    m = client.messages.create(model="sim-claude", max_tokens=8, messages=HI, fallback_model="sim-gpt", app_id=app)
    assert m.model == "sim-claude"
    assert {rec.model_served for rec in wait_records(client, 2, app=app)} == {"sim-gpt", "sim-claude"}


@pytest.mark.route("/v1/router", issue=10)
def test_router_decision_only(client: Perilune) -> None:
    cheap = client.router.decide(messages=QUESTION, cost_weight=0)
    assert cheap.model and cheap.candidates and cheap.routing_ms is not None
    for c in cheap.candidates:
        assert c.model and c.predicted_quality is not None and 0 <= c.predicted_quality <= 1
        assert isinstance(c.expected_cost_usd, Decimal) and c.score is not None
    assert cheap.model == min(cheap.candidates, key=lambda c: c.score or 0).model
    assert "embedder" in cheap.raw and cheap.cost_weight == 0
    with pytest.raises(p.InvalidRequestError) as e:
        client.router.decide(messages=QUESTION, cost_weight=-1)
    assert e.value.param == "cost_weight"


@pytest.mark.route("/v1/router", issue=10)
def test_router_execute_and_stream(client: Perilune) -> None:
    r = client.router.create(messages=HI, max_tokens=8)
    assert r.router is not None and r.router.model and r.text and r.usage and r.usage.total_cost_usd is not None
    s = client.router.stream(messages=HI, max_tokens=8).until_done()
    assert s.text and s.usage is not None and s.routed_model


@pytest.mark.route("/v1/router/profiles", issue=10)
def test_router_profiles(client: Perilune) -> None:
    profiles = client.router.profiles()
    assert len(profiles) >= 2 and all(x.model or x.id for x in profiles)


@pytest.mark.route("/v1/feedback", issue=10)
def test_feedback(client: Perilune) -> None:
    app = unique("feedback")
    client.chat.create(model="sim-gpt", messages=HI, app_id=app)
    (rec,) = wait_records(client, 1, app=app)
    fb = client.feedback.create(request_id=rec.id, score=0.75)
    assert fb.raw
    with pytest.raises(p.InvalidRequestError) as e:
        client.feedback.create(request_id=rec.id, score=2)
    assert e.value.param == "score"


@pytest.mark.route("/v1/responses", issue=11)
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
