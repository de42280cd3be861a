"""The SDK's tests run against a real gateway in demo mode (its built-in simulator upstream), of this
checkout: ``make sdk-test`` starts one for both SDKs (sdk/testbed.py); run alone, this suite starts
its own. Response types are loaded strictly here: a field the gateway sends that the SDK does not
declare fails the test (the SDK must never drift from the gateway)."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from perilune_sdk import AsyncPerilune, Perilune, _convert
from perilune_sdk.types import UsageRecord

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "sdk"))

from testbed import Testbed, testbed  # noqa: E402

_convert.strict()


@pytest.fixture(scope="session")
def tb() -> Iterator[Testbed]:
    given = Testbed.from_env()
    if given is not None:
        yield given
        return
    with testbed() as started:
        yield started


@pytest.fixture(scope="session")
def openapi(tb: Testbed) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(tb.base_url.removesuffix("/v1") + "/openapi.json").json()
    return doc


@pytest.fixture(scope="session")
def client(tb: Testbed) -> Iterator[Perilune]:
    with Perilune(api_key=tb.api_key, base_url=tb.base_url, app_id="sdk-py-tests") as c:
        yield c


@pytest.fixture
async def aclient(tb: Testbed) -> AsyncIterator[AsyncPerilune]:
    async with AsyncPerilune(api_key=tb.api_key, base_url=tb.base_url, app_id="sdk-py-async") as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def wait_records(client: Perilune, want: int, **filters: Any) -> list[UsageRecord]:
    """Usage records are written in batches after the response: poll until ``want`` are there."""
    deadline = time.monotonic() + 15
    while True:
        got = list(client.usage.records.iter(**filters))
        if len(got) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


HI = [{"role": "user", "content": "Hello!"}]
Wait = Callable[..., list[UsageRecord]]
