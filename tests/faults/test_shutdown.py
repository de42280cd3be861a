"""SIGTERM while long streams are open (g): when the grace period ends each client gets an error event in
its dialect and a proper end ([DONE] for OpenAI, a terminated HTTP body), and each stream is recorded as
closed by the server (not a client hang-up, not a 500) with the charge for what was generated."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import GRACE_S, MakeCluster, grace_config
from tests.faults.invariants import Verdict, check_all
from tests.faults.load import Driver, Result, Spec

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]

LONG = (("x-sim-chunk-delay-ms", "500"), ("x-sim-output-tokens", "80"))  # a 40 s stream


def check_ending(r: Result, v: Verdict) -> None:
    if r.error:
        v.fail(f"{r}: the stream did not end properly (transport error), events {r.events[-4:]}")
    if r.error_event is None:
        v.fail(f"{r}: no error event in the client's dialect before the end; last events {r.events[-4:]}")
    if not r.spec.sdk and r.spec.dialect == "openai" and r.events[-1:] != ["[DONE]"]:
        v.fail(f"{r}: the OpenAI stream did not end with [DONE]; last events {r.events[-4:]}")
    if not r.spec.sdk and r.spec.dialect == "anthropic" and r.events[-1:] != ["error"]:
        v.fail(f"{r}: the Anthropic stream did not end with its error event; last events {r.events[-4:]}")
    if r.done and r.chunks >= 80:
        v.fail(f"{r}: the stream finished normally: the scenario did not test a shutdown")


@pytest.mark.timeout(150)
async def test_g_sigterm_with_long_streams_open(make_cluster: MakeCluster) -> None:
    c = make_cluster(top=grace_config())
    acct = c.account("50", "shutdown")
    gw0 = c.nodes[0]
    specs = [Spec("openai", "sim-gpt", stream=True, max_tokens=200, sim=LONG, timeout_s=60),
             Spec("openai", "sim-gpt", stream=True, max_tokens=200, sim=LONG, timeout_s=60, sdk=True),
             Spec("anthropic", "sim-gpt", stream=True, max_tokens=200, sim=LONG, timeout_s=60),
             Spec("anthropic", "sim-claude", stream=True, max_tokens=200, sim=LONG, timeout_s=60),
             Spec("anthropic", "sim-claude", stream=True, max_tokens=200, sim=LONG, timeout_s=60, sdk=True)]
    v = Verdict()
    async with Driver([n.url for n in c.nodes], acct.key) as driver:
        streams = [asyncio.create_task(driver.send(s, 0)) for s in specs]
        await asyncio.sleep(3)  # a few chunks each
        took = await asyncio.to_thread(gw0.sigterm, GRACE_S + 30)
        results = list(await asyncio.gather(*streams))
    if took is None:
        v.fail(f"gw0 still running {GRACE_S + 30:.0f} s after SIGTERM (grace {GRACE_S:.0f} s); killed")
    elif took > GRACE_S + 3:
        v.fail(f"gw0 took {took:.1f} s to stop after SIGTERM with streams open; the grace period is {GRACE_S:.0f} s")
    v.note(f"gw0 stopped {took} s after SIGTERM (grace {GRACE_S} s)")
    for r in results:
        check_ending(r, v)
    final = check_all(c, results, [acct])
    v.failures += final.failures
    v.notes += final.notes
    for r in results:
        rec = final.records.get(r.request_id or "")
        if rec is None:
            continue
        if rec["status"] in (499, 500) or rec["status"] < 400:
            v.fail(f"{r.request_id} [{r.spec.kind}]: recorded with status {rec['status']} ({rec['error_type']}); "
                   "a stream the server closed is neither a client hang-up (499) nor a 500 nor a success")
        if not rec["output_tokens"] or not rec["charged_pusd"]:
            v.fail(f"{r.request_id} [{r.spec.kind}] after {r.chunks} chunks: no partial charge "
                   f"(output_tokens {rec['output_tokens']}, cost {rec['total_cost_pusd']}, "
                   f"charged {rec['charged_pusd']})")
    v.check()
