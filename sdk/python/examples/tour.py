"""A tour of what only perilune has, against a gateway in demo mode (``perilune serve`` with no provider
key): the key comes from PERILUNE_API_KEY (and the URL from PERILUNE_BASE_URL, default
http://127.0.0.1:8787/v1). Run it with ``python tour.py``; it exits non-zero when a check fails."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

from perilune_sdk import InsufficientBalanceError, Perilune, RateLimitError
from perilune_sdk.types import UsageRecord

HI = [{"role": "user", "content": "Hello!"}]
app = f"tour-py-{uuid.uuid4().hex[:8]}"
client = Perilune(app_id=app)  # X-App-ID on every call of this client

# chat: cost and timings as typed fields
r = client.chat.create(model="sim-gpt", messages=HI, max_tokens=16)
cost: Decimal | None = r.usage.total_cost_usd
assert isinstance(cost, Decimal) and cost > 0 and r.usage.charged_usd == cost
assert r.usage.latency_ms is not None and r.usage.ttft_ms is not None
print(f"chat    {r.provider}/{r.model}: {r.text!r} cost ${cost} latency {r.usage.latency_ms} ms "
      f"ttft {r.usage.ttft_ms} ms")

# the same, streamed: typed chunks, then the usage of the whole stream
with client.chat.stream(model="sim-gpt", messages=HI, max_tokens=16) as stream:
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
assert text and stream.usage.total_cost_usd is not None and stream.usage.ttft_ms is not None
print(f"stream  {text!r} cost ${stream.usage.total_cost_usd} ttft {stream.usage.ttft_ms} ms")

# app_id in the usage log (records are written within a second of the response)
deadline = time.monotonic() + 15
records: list[UsageRecord] = []
while len(records) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
    records = list(client.usage.records.iter(app=app))
assert [x.app for x in records] == [app, app], records
print(f"usage   {len(records)} records with app={app}: " + ", ".join(f"{x.id} ${x.cost.total_usd}" for x in records))

# the router's decision only (execute=False): every candidate's predicted quality, cost and score
question = [{"role": "user", "content": "Prove that the square root of 2 is irrational."}]
d = client.router.decide(messages=question, cost_weight=0.5)
assert d.model == min(d.candidates, key=lambda c: c.score or 0.0).model
best = d.candidates[0]
print(f"router  {d.model} of {len(d.candidates)} candidates (quality {best.predicted_quality}, "
      f"${best.expected_cost_usd}) in {d.routing_ms} ms, embedder {d.embedder}")

# the providers and their health
providers = client.providers.list()
assert any(p.provider == "sim" and "sim-gpt" in p.models for p in providers)
h = client.providers.for_model("sim-gpt").providers[0]
print("provid. " + ", ".join(f"{p.provider} ({len(p.models)} models)" for p in providers)
      + f"; sim-gpt on {h.provider}: {h.status}, breaker {h.breaker}, ttft p50 {h.ttft_ms_p50} ms")

# the balance
b = client.balance.retrieve()
assert b.balance_usd > 0
print(f"balance ${b.balance_usd} (spent today ${b.spend_today_usd})")

# a 402 and a 429 as typed errors
try:  # 128 answers of up to 65,536 tokens may cost $20.97: more than the demo account's $10
    client.chat.create(model="sim-gemini", messages=HI, n=128, max_tokens=65_536)
    raise SystemExit("expected a 402")
except InsufficientBalanceError as e:
    assert e.status == 402
    print(f"402     {type(e).__name__} {e.code}: {e.message}")
try:  # the simulator refuses this one as a rate-limited provider would
    client.chat.create(model="sim-gpt", messages=HI, max_retries=0, extra_headers={"x-sim-fault": "429"})
    raise SystemExit("expected a 429")
except RateLimitError as e:
    assert e.status == 429 and e.retry_after is not None
    print(f"429     {type(e).__name__} {e.code}: retry after {e.retry_after} s")
print("ok")
