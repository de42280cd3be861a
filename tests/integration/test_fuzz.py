"""Property-based fuzzing of the whole API from its own /openapi.json (schemathesis + hypothesis):
schema-conforming and schema-violating requests to every operation, each sent with an account key and
with the admin key, against a real gateway. The one check: no 5xx, ever (the simulator upstream does
not fail unless asked). Bounded in time: generating cases is what costs (up to half a second for a
chat body on a busy machine), so each case is generated once and sent with both keys, and every
operation and mode gets an equal share of BUDGET_S."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, StartGateway
from tests.services import fresh_postgres

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

BUDGET_S = 60.0
MAX_EXAMPLES = 40  # per operation and mode, if time allows


class _OutOfTime(Exception):
    pass


def _form(op: Any) -> bool:
    """A dashboard form: every value of an urlencoded body is a string anyway, and schemathesis spends a
    minute trying to make one that is not; those get schema-conforming (arbitrary string) cases only."""
    body = op.definition.raw.get("requestBody") or {}
    return "application/x-www-form-urlencoded" in body.get("content", {})


@pytest.fixture(scope="module")
def fuzz_gw(start_gateway: StartGateway) -> Iterator[Gateway]:
    """SQLite by default; TEST_FUZZ_POSTGRES=1 fuzzes a gateway on PostgreSQL instead."""
    if not os.environ.get("TEST_FUZZ_POSTGRES"):
        yield start_gateway()
        return
    with fresh_postgres() as url:
        gw = start_gateway(env={"PERILUNE_DATABASE_URL": url})
        yield gw
        gw.stop()


@pytest.mark.timeout(300)
def test_no_server_errors_with_user_and_admin_keys(fuzz_gw: Gateway) -> None:
    gw = fuzz_gw
    doc = httpx.get(gw.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    ops = [r.ok() for r in schema.get_all_operations()]
    keys = {"user": gw.key, "admin": gw.admin_key}
    session = requests.Session()
    failures: list[str] = []
    sent = {who: 0 for who in keys}
    covered: set[tuple[str, str]] = set()
    started = time.monotonic()
    slots = [(op, mode) for op in ops for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
             if mode == GenerationMode.POSITIVE or not _form(op)]
    def slot(op: Any, mode: GenerationMode, slot_end: float) -> None:
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            for who, key in keys.items():
                try:
                    r = case.call(base_url=gw.url, session=session, headers={"Authorization": f"Bearer {key}"},
                                  timeout=30, allow_redirects=False)
                except requests.RequestException:  # the client could not send it (e.g. an illegal header)
                    assert gw.proc.poll() is None, f"gateway died on {case.method} {case.formatted_path}"
                    continue
                sent[who] += 1
                covered.add((op.method, op.path))
                if r.status_code >= 500:
                    failures.append(f"[{who}] {r.status_code} {case.method} {case.formatted_path} "
                                    f"query={case.query!r} body={str(case.body)[:300]!r}: {r.text[:300]}")
            if time.monotonic() > slot_end:
                raise _OutOfTime

        try:
            run()
        except _OutOfTime:
            pass
        except Unsatisfiable:  # nothing in this operation can be made to violate its schema
            assert mode == GenerationMode.NEGATIVE

    took: list[tuple[float, str]] = []
    for i, (op, mode) in enumerate(slots):
        remaining = BUDGET_S - (time.monotonic() - started)
        t0 = time.monotonic()
        slot(op, mode, t0 + max(0.3, remaining / (len(slots) - i)))
        took.append((time.monotonic() - t0, f"{mode} {op.method} {op.path}"))
    print("slowest slots:", sorted(took, reverse=True)[:5])
    elapsed = time.monotonic() - started
    print(f"fuzz: {sent['user']} requests with the user key, {sent['admin']} with the admin key, "
          f"{len(covered)}/{len(ops)} operations, {elapsed:.1f} s, {len(failures)} server errors")
    assert failures == [], "\n".join(failures[:20])
    assert len(covered) == len(ops), sorted({(o.method, o.path) for o in ops} - covered)
    assert min(sent.values()) >= 300
    assert gw.proc.poll() is None and httpx.get(gw.url + "/health").status_code == 200
