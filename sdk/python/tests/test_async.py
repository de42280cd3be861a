"""The async client: the same surface as the sync one, awaited."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import HI, unique, wait_records
from testbed import Testbed

import perilune_sdk as p
from perilune_sdk import AsyncPerilune, Perilune


async def test_chat_create_and_stream(aclient: AsyncPerilune) -> None:
    r = await aclient.chat.create(model="sim-gpt", messages=HI)
    assert r.usage is not None and isinstance(r.usage.total_cost_usd, Decimal) and r.usage.ttft_ms is not None
    s = await aclient.chat.stream(model="sim-gpt", messages=HI)
    chunks = [c async for c in s]
    assert s.text == r.text and chunks[-1].usage is s.usage and s.usage is not None
    assert s.usage.total_cost_usd == r.usage.total_cost_usd


async def test_every_dialect(aclient: AsyncPerilune) -> None:
    c = await aclient.completions.create(model="sim-gpt", prompt="hi", max_tokens=3)
    assert c.usage is not None and c.usage.completion_tokens == 3
    cs = await (await aclient.completions.stream(model="sim-gpt", prompt="hi", max_tokens=3)).until_done()
    assert cs.text == c.choices[0].text
    e = await aclient.embeddings.create(model="sim-embed", input="hi", dimensions=2)
    assert len(e.data[0].embedding) == 2
    m = await aclient.messages.create(model="sim-claude", max_tokens=16, messages=HI)
    async with await aclient.messages.stream(model="sim-claude", max_tokens=16, messages=HI) as ms:
        events = [ev.type async for ev in ms]
    assert events[-1] == "message_stop" and ms.text == m.text and ms.usage is not None
    assert (await aclient.messages.count_tokens(model="sim-claude", messages=HI)).input_tokens > 0


async def test_models_balance_usage(aclient: AsyncPerilune, client: Perilune) -> None:
    assert all("embedding" in m.output_modalities for m in await aclient.models.list(output=["embedding"]))
    assert (await aclient.models.retrieve("sim-embed")).id == "sim-embed"
    bal = await aclient.balance.retrieve()
    assert bal.balance_usd > 0
    app = unique("async-app")
    for _ in range(3):
        await aclient.chat.create(model="sim-gpt", messages=HI, app_id=app, max_tokens=2)
    wait_records(client, 3, app=app)
    got = [r async for r in aclient.usage.records.iter(app=app, page_size=1)]
    assert len(got) == 3 and {r.app for r in got} == {app}
    agg = await aclient.usage.aggregate(group_by="app", app=app)
    assert agg.data[0].requests == 3


async def test_typed_errors(tb: Testbed, aclient: AsyncPerilune) -> None:
    async with AsyncPerilune(api_key=tb.poor_key, base_url=tb.base_url) as poor:
        with pytest.raises(p.InsufficientBalanceError):
            await poor.chat.create(model="sim-gpt", messages=HI)
    with pytest.raises(p.InvalidRequestError) as e:
        await aclient.chat.create(model="sim-gpt", messages=HI, top_p=3)
    assert e.value.param == "top_p"
    with pytest.raises(p.UpstreamRateLimitedError) as r:
        await aclient.chat.create(model="sim-gpt", messages=HI, max_retries=0, extra_headers={"x-sim-fault": "429"})
    assert r.value.retry_after == 2.0
    with pytest.raises(p.APITimeoutError):
        await aclient.chat.create(model="sim-gpt", messages=HI, timeout=0.3, max_retries=0,
                                  extra_headers={"x-sim-latency-ms": "3000"})
