"""The sync client against a real gateway (demo mode, simulator upstream)."""

from __future__ import annotations

import base64
import struct
import time
from decimal import Decimal

import pytest
from conftest import HI, unique, wait_records
from testbed import Testbed

import perilune_sdk as p
from perilune_sdk import Perilune


def test_key_and_base_url_from_the_environment(tb: Testbed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERILUNE_API_KEY", tb.api_key)
    monkeypatch.setenv("PERILUNE_BASE_URL", tb.base_url)
    with Perilune() as c:
        assert c.base_url == tb.base_url
        assert c.balance.retrieve().account_id == tb.account_id
    monkeypatch.delenv("PERILUNE_API_KEY")
    with pytest.raises(p.PeriluneError, match="PERILUNE_API_KEY"):
        Perilune()


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERILUNE_BASE_URL", raising=False)
    assert Perilune(api_key="k").base_url == "http://127.0.0.1:8787/v1"


def test_chat_create_has_typed_cost_and_timings(client: Perilune) -> None:
    r = client.chat.create(model="sim-gpt", messages=HI, max_tokens=16)
    assert r.object == "chat.completion" and r.provider == "sim" and r.model == "sim-gpt"
    assert r.text and r.choices[0].message.role == "assistant" and r.choices[0].finish_reason in ("stop", "length")
    u = r.usage
    assert u is not None and u.prompt_tokens and u.completion_tokens
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert isinstance(u.total_cost_usd, Decimal) and u.total_cost_usd > 0
    assert u.input_cost_usd is not None and u.output_cost_usd is not None and u.cache_input_cost_usd is not None
    assert u.total_cost_usd == u.input_cost_usd + u.output_cost_usd + u.cache_input_cost_usd
    assert u.latency_ms is not None and u.latency_ms > 0 and u.ttft_ms is not None and 0 < u.ttft_ms <= u.latency_ms
    assert r.raw["usage"]["total_tokens"] == u.total_tokens


def test_chat_stream_yields_typed_chunks_and_the_final_usage(client: Perilune) -> None:
    with client.chat.stream(model="sim-gpt", messages=HI) as s:
        chunks = list(s)
    assert len(chunks) > 2 and all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and s.text == text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert s.usage is chunks[-1].usage and s.provider == "sim" and s.request_id
    assert s.usage.total_cost_usd is not None and s.usage.total_cost_usd > 0
    assert s.usage.ttft_ms is not None and s.usage.latency_ms is not None


def test_app_id_per_client_and_per_call_in_the_usage_log(tb: Testbed) -> None:
    app_client, app_call = unique("client-app"), unique("call-app")
    with Perilune(api_key=tb.api_key, base_url=tb.base_url, app_id=app_client) as c:
        c.chat.create(model="sim-gpt", messages=HI)
        c.chat.stream(model="sim-gpt", messages=HI, app_id=app_call).until_done()
        per_client = wait_records(c, 1, app=app_client)
        per_call = wait_records(c, 1, app=app_call)
    assert [(r.app, r.endpoint, r.stream, r.status) for r in per_client] == [(app_client, "chat", False, 200)]
    assert [(r.app, r.endpoint, r.stream, r.status) for r in per_call] == [(app_call, "chat", True, 200)]
    assert per_call[0].cost.total_usd is not None and per_call[0].cost.total_usd > 0


def test_completions(client: Perilune) -> None:
    r = client.completions.create(model="sim-gpt", prompt="Say hi", max_tokens=5)
    assert r.object == "text_completion" and r.choices[0].text and r.usage and r.usage.completion_tokens == 5
    s = client.completions.stream(model="sim-gpt", prompt="Say hi", max_tokens=5).until_done()
    assert s.text == r.choices[0].text  # the simulator is deterministic
    assert s.usage is not None and s.usage.total_cost_usd == r.usage.total_cost_usd


def test_embeddings_float_and_base64(client: Perilune) -> None:
    f = client.embeddings.create(model="sim-embed", input=["one", "two"], dimensions=4)
    assert [e.index for e in f.data] == [0, 1] and f.usage is not None and f.usage.total_cost_usd
    vec = f.data[0].embedding
    assert isinstance(vec, list) and len(vec) == 4
    b = client.embeddings.create(model="sim-embed", input=["one", "two"], dimensions=4, encoding_format="base64")
    raw = b.data[0].embedding
    assert isinstance(raw, str)
    assert list(struct.unpack("<4f", base64.b64decode(raw))) == pytest.approx(vec)


def test_messages_in_the_anthropic_dialect(client: Perilune) -> None:
    m = client.messages.create(model="sim-claude", max_tokens=32, messages=HI, system="Be brief.")
    assert m.type == "message" and m.role == "assistant" and m.text and m.content[0].type == "text"
    assert m.usage is not None and m.usage.input_tokens and m.usage.total_cost_usd and m.usage.ttft_ms is not None
    with client.messages.stream(model="sim-claude", max_tokens=32, messages=HI) as s:
        kinds = [e.type for e in s]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
    assert s.text and s.stop_reason and s.usage is not None and s.usage.total_cost_usd and s.provider
    n = client.messages.count_tokens(model="sim-claude", messages=HI)
    assert n.input_tokens > 0


def test_models_with_modality_filters(client: Perilune) -> None:
    every = client.models.list()
    embed = client.models.list(output=["embedding"])
    vision = client.models.list(input=["text", "image"])
    assert {m.id for m in embed} < {m.id for m in every} and "sim-embed" in {m.id for m in embed}
    assert all("embedding" in m.output_modalities for m in embed)
    assert vision and all({"text", "image"} <= set(m.input_modalities) for m in vision)
    one = client.models.retrieve("sim-gpt")
    assert one.id == "sim-gpt" and one.price is not None and isinstance(one.price.input, Decimal)
    with pytest.raises(p.InvalidRequestError) as e:
        client.models.list(input=["smell"])
    assert e.value.param == "input"


def test_balance_and_alert_settings(client: Perilune) -> None:
    before = client.balance.retrieve()
    assert before.currency == "USD" and isinstance(before.balance_usd, Decimal) and before.balance_usd > 0
    after = client.balance.set_alerts(thresholds_usd=["5", "0.5"], webhook_url="https://alerts.example.com/hook")
    assert after.alerts.thresholds_usd == [Decimal(5), Decimal("0.5")]
    assert after.alerts.webhook_url == "https://alerts.example.com/hook"
    assert client.balance.retrieve().alerts == after.alerts
    with pytest.raises(p.InvalidRequestError) as e:
        client.balance.set_alerts(thresholds_usd=["-1"])
    assert e.value.param == "thresholds_usd"
    client.balance.set_alerts(thresholds_usd=[], webhook_url=None)


def test_usage_records_paginate_by_cursor(client: Perilune) -> None:
    app = unique("pages")
    for _ in range(5):
        client.chat.create(model="sim-gpt", messages=HI, app_id=app, max_tokens=4)
    records = wait_records(client, 5, app=app, page_size=2)
    assert len(records) == 5 and len({r.id for r in records}) == 5
    times = [r.created_at or 0.0 for r in records]
    assert times == sorted(times, reverse=True)
    first = client.usage.records.list(app=app, limit=2)
    assert len(first.data) == 2 and first.has_more and first.next_cursor
    second = client.usage.records.list(app=app, limit=2, cursor=first.next_cursor)
    assert {r.id for r in first.data}.isdisjoint(r.id for r in second.data)
    one = client.usage.records.retrieve(records[0].id)
    assert one.id == records[0].id and one.model_requested == "sim-gpt" and one.usage.completion_tokens == 4


def test_usage_aggregate(client: Perilune) -> None:
    app = unique("agg")
    for _ in range(3):
        client.chat.create(model="sim-gpt", messages=HI, app_id=app, max_tokens=4)
    wait_records(client, 3, app=app)
    agg = client.usage.aggregate(group_by=["app", "model"], app=app)
    assert agg.group_by == ["app", "model"]
    assert [(r.group, r.requests, r.errors, r.tokens.output) for r in agg.data] == [
        ({"app": app, "model": "sim-gpt"}, 3, 0, 12)]
    row = agg.data[0]
    assert row.cost_usd.total is not None and row.cost_usd.total > 0 and row.latency_ms.p50 is not None


def test_observability_payload_in_the_record(client: Perilune) -> None:
    app = unique("observed")
    client.chat.create(model="sim-gpt", messages=HI, app_id=app, observability=True)
    (rec,) = wait_records(client, 1, app=app)
    full = client.usage.records.retrieve(rec.id)
    assert full.observability and full.payload["request"]["messages"] == HI


# ---- errors ---------------------------------------------------------------------------------------

def test_invalid_request_names_the_param(client: Perilune) -> None:
    with pytest.raises(p.InvalidRequestError) as e:
        client.chat.create(model="sim-gpt", messages=HI, temperature=9)
    assert e.value.status == 400 and e.value.param == "temperature" and e.value.request_id


def test_unknown_model_is_not_found_in_both_dialects(client: Perilune) -> None:
    with pytest.raises(p.NotFoundError) as e:
        client.chat.create(model="no-such-model", messages=HI)
    assert e.value.param == "model"
    with pytest.raises(p.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=8, messages=HI)


def test_bad_key_is_an_authentication_error(tb: Testbed) -> None:
    with Perilune(api_key="pk_live_wrong", base_url=tb.base_url) as c, pytest.raises(p.AuthenticationError) as e:
        c.balance.retrieve()
    assert e.value.status == 401


def test_insufficient_balance_is_402(tb: Testbed) -> None:
    with Perilune(api_key=tb.poor_key, base_url=tb.base_url) as c, pytest.raises(p.InsufficientBalanceError) as e:
        c.chat.create(model="sim-gpt", messages=HI)
    assert e.value.status == 402 and e.value.code == "insufficient_balance"
    assert isinstance(e.value, p.ClientError) and not isinstance(e.value, p.RateLimitError)
    with Perilune(api_key=tb.poor_key, base_url=tb.base_url) as c, pytest.raises(p.InsufficientBalanceError):
        c.chat.stream(model="sim-gpt", messages=HI)  # refused before the stream starts


def test_rate_limit_is_429_with_retry_after(tb: Testbed) -> None:
    # 1 request per minute: the second (or, within the same minute as another suite, the first) is refused
    with Perilune(api_key=tb.limited_key, base_url=tb.base_url, max_retries=0) as c, \
            pytest.raises(p.RateLimitError) as e:
        for _ in range(2):
            c.chat.create(model="sim-gpt", messages=HI, max_tokens=4)
    err = e.value
    assert err.status == 429 and not isinstance(err, p.UpstreamRateLimitedError)
    assert err.retry_after is not None and 0 < err.retry_after <= 60


def test_upstream_429_is_retried_after_retry_after(client: Perilune) -> None:
    app = unique("retried")
    started = time.monotonic()
    with pytest.raises(p.UpstreamRateLimitedError) as e:  # the simulator refuses every try, Retry-After: 2
        client.chat.create(model="sim-gpt", messages=HI, app_id=app, max_retries=1,
                           extra_headers={"x-sim-fault": "429"})
    assert time.monotonic() - started >= 2.0
    assert isinstance(e.value, p.RateLimitError) and e.value.retry_after == 2.0
    assert [r.status for r in wait_records(client, 2, app=app)] == [429, 429]


def test_error_in_the_middle_of_a_stream(client: Perilune) -> None:
    s = client.chat.stream(model="sim-gpt", messages=HI, extra_headers={"x-sim-fault": "error-event"})
    with pytest.raises(p.UpstreamUnavailableError) as e:
        list(s)
    assert e.value.code == "upstream_unavailable"


def test_client_timeout(client: Perilune) -> None:
    with pytest.raises(p.APITimeoutError):
        client.chat.create(model="sim-gpt", messages=HI, timeout=0.3, max_retries=0,
                           extra_headers={"x-sim-latency-ms": "3000"})


def test_connection_refused() -> None:
    with Perilune(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=1) as c, \
            pytest.raises(p.APIConnectionError):
        c.balance.retrieve()


def test_extra_body_reaches_the_gateway(client: Perilune) -> None:
    with pytest.raises(p.InvalidRequestError) as e:
        client.chat.create(model="sim-gpt", messages=HI, extra_body={"n": 0})
    assert e.value.param == "n"
