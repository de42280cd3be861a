"""The scenarios without a network fault, on one cluster: ~50 concurrent streams in both dialects with
most clients hanging up mid-stream (a); Anthropic-dialect clients hanging up before ``message_delta``
(h); no max_tokens on a model with a large maximum output must not lead to a write-off (e); a max_tokens
no model allows is a 400 naming the param, never a store error (f). A hang-up is recorded as one (499)
and charged for what was generated; what is reserved bounds what is generated."""

from __future__ import annotations

import orjson
import pytest

from tests.faults.cluster import Cluster
from tests.faults.invariants import Verdict, check_all, check_lowest, watch_ledger
from tests.faults.load import Driver, Result, Spec

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

PACED = (("x-sim-chunk-delay-ms", "20"), ("x-sim-output-tokens", "40"))  # ~0.8 s per stream


def check_hangups(results: list[Result], v: Verdict) -> None:
    """Each hung-up stream: recorded as a client hang-up (499) and charged what was generated (> 0; the
    invariants check that it equals the cost). A 200 is right too when the whole answer had been sent
    before the client closed (it was generated and paid in full)."""
    wrong = []
    statuses: dict[int, int] = {}
    for r in results:
        rec = v.records.get(r.request_id or "")
        if not r.hung_up or rec is None:
            continue
        statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
        if rec["status"] not in (200, 499) or not rec["output_tokens"] or not rec["charged_pusd"]:
            wrong.append(f"{r.request_id} [{r.spec.kind}] after {r.chunks} chunks: record status {rec['status']} "
                         f"({rec['error_type']}), output_tokens {rec['output_tokens']}, cost "
                         f"{rec['total_cost_pusd']}, charged {rec['charged_pusd']}")
    v.note(f"hung-up streams by record status: {statuses}")
    if wrong:
        v.fail(f"{len(wrong)} of {sum(r.hung_up for r in results)} hung-up streams not recorded as a paid hang-up "
               f"(499, charged > 0): " + "; ".join(wrong[:8]))
    unfinished = [r for r in results if r.spec.stream and not r.hung_up and r.status == 200 and not r.done]
    if unfinished:
        v.fail(f"{len(unfinished)} streams the client read to the end did not end properly: "
               + "; ".join(str(r) for r in unfinished[:8]))


def mix_a(i: int) -> Spec:
    dialect = "openai" if i % 2 == 0 else "anthropic"
    model = "sim-claude" if i % 4 == 1 else "sim-gpt"  # Anthropic dialect: native and translated
    hangup = None if i % 3 == 0 else 1 + i % 5
    if i % 10 == 9:
        return Spec(dialect, model, max_tokens=64, sim=PACED, sdk=i % 20 == 19)
    return Spec(dialect, model, stream=True, hangup_after=hangup, sdk=i % 7 == 0, max_tokens=64, sim=PACED)


@pytest.mark.timeout(120)
async def test_a_fifty_concurrent_streams_with_clients_hanging_up(calm: Cluster) -> None:
    acct = calm.account("50", "hangups")
    async with Driver([n.url for n in calm.live], acct.key) as driver, watch_ledger(calm, [acct]) as lowest:
        results = await driver.run(mix_a, concurrency=50, count=200)
    v = check_all(calm, results, [acct])
    check_lowest(lowest, v)
    check_hangups(results, v)
    hung = sum(r.hung_up for r in results)
    if hung < 80:
        v.fail(f"the scenario itself is off: only {hung} clients hung up")
    v.check()


@pytest.mark.timeout(90)
async def test_h_anthropic_client_hanging_up_before_message_delta_is_charged(calm: Cluster) -> None:
    acct = calm.account("5", "anthropic-hangups")
    slow = (("x-sim-chunk-delay-ms", "40"), ("x-sim-output-tokens", "30"))
    specs = [Spec("anthropic", model, stream=True, hangup_after=k, sdk=sdk, max_tokens=100, sim=slow)
             for model in ("sim-claude", "sim-gpt") for sdk in (False, True) for k in (1, 4)]
    async with Driver([n.url for n in calm.live], acct.key) as driver:
        results = [await driver.send(s, i % 2) for i, s in enumerate(specs)]
    for r in results:
        assert r.hung_up and "message_delta" not in r.events, f"not a hang-up before message_delta: {r} {r.events}"
    v = check_all(calm, results, [acct])
    check_hangups(results, v)
    v.check()


@pytest.mark.timeout(90)
async def test_e_no_max_tokens_on_a_large_output_model_writes_nothing_off(calm: Cluster) -> None:
    # sim-gpt allows 16,384 output tokens ($2 / million); each answer would be 8,000 tokens ($0.016) and
    # ten at once would cost $0.16 against $0.10: what is generated must stay within what was reserved.
    acct = calm.account("0.1", "no-max-tokens")
    long = (("x-sim-output-tokens", "8000"),)

    def mix(i: int) -> Spec:
        return Spec("openai", "sim-gpt", stream=i % 2 == 1, max_tokens=None, sim=long, sdk=i % 4 == 2)

    async with Driver([n.url for n in calm.live], acct.key) as driver:
        results = await driver.run(mix, concurrency=10, count=10)
    v = check_all(calm, results, [acct])
    served = [r for r in results if r.status == 200]
    if not served:
        v.fail("no request was served at all: " + "; ".join(str(r) for r in results))
    v.check()


def _named(r: Result, param: str) -> bool:
    """The error names the parameter (OpenAI envelope: `param`; Anthropic envelope: in the message)."""
    try:
        body = orjson.loads(r.body)
    except orjson.JSONDecodeError:
        return False
    err = body.get("error") or {}
    return err.get("param") == param or param in str(err.get("message", ""))


@pytest.mark.timeout(60)
async def test_f_max_tokens_beyond_any_model_is_a_400_naming_the_param(calm: Cluster) -> None:
    acct = calm.account("1", "huge-max-tokens")
    cases = [
        (Spec("openai", "sim-gpt", max_tokens=2**63), "max_tokens"),
        (Spec("openai", "sim-gpt", max_tokens=2**63, stream=True), "max_tokens"),
        (Spec("openai", "sim-gpt", max_tokens=None, extra=(("max_completion_tokens", 2**63),)),
         "max_completion_tokens"),
        (Spec("openai", "sim-gpt", max_tokens=16385), "max_tokens"),  # one above the model's maximum
        (Spec("anthropic", "sim-claude", max_tokens=2**63), "max_tokens"),  # native Anthropic upstream
        (Spec("anthropic", "sim-gpt", max_tokens=2**63), "max_tokens"),  # translated to an OpenAI upstream
        (Spec("anthropic", "sim-gpt", max_tokens=2**63, stream=True), "max_tokens"),
    ]
    async with Driver([n.url for n in calm.live], acct.key) as driver:
        results = [await driver.send(spec, i % 2) for i, (spec, _) in enumerate(cases)]
    v = check_all(calm, results, [acct])
    for r, (_, param) in zip(results, cases, strict=True):
        if r.status != 400 or not _named(r, param):
            v.fail(f"{r.request_id} [{r.spec.kind}] with {param} too large: expected a 400 naming {param!r}, got "
                   f"HTTP {r.status} {r.body[:300]!r}; record {v.records.get(r.request_id or '')}")
    v.check()
