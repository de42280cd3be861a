"""What is reserved bounds what is generated: no max_tokens on a model with a large maximum output must
not lead to a write-off (e), and a max_tokens no model allows is a 400 naming the param, never a store
error (f)."""

from __future__ import annotations

import orjson
import pytest

from tests.faults.cluster import Cluster
from tests.faults.invariants import check_all
from tests.faults.load import Driver, Result, Spec

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]


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
        (Spec("anthropic", "sim-claude", max_tokens=2**63), "max_tokens"),
        (Spec("anthropic", "sim-gpt", max_tokens=2**63, stream=True), "max_tokens"),
    ]
    async with Driver([n.url for n in calm.live], acct.key) as driver:
        results = [await driver.send(spec, i % 2) for i, (spec, _) in enumerate(cases)]
    v = check_all(calm, results, [acct])
    for r, (_, param) in zip(results, cases, strict=True):
        if r.status != 400 or not _named(r, param):
            v.fail(f"{r.spec.kind} with {param} too large: expected a 400 naming {param!r}, got HTTP {r.status} "
                   f"{r.body[:300]!r}")
    v.check()
