"""The retry policy, against a real socket that fails on purpose (a stand-in that answers like the
gateway does when it refuses: 503 with Retry-After, 502 after running the request)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import perilune_sdk as p
from perilune_sdk import Perilune

OK = {"object": "balance", "account_id": "acct_x", "balance_usd": "1.5", "currency": "USD", "prepaid": True,
      "spend_today_usd": "0", "spend_month_usd": "0", "alerts": {"thresholds_usd": [], "webhook_url": None}}


class Flaky(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.seen: list[tuple[str, float, str | None]] = []


class Handler(BaseHTTPRequestHandler):
    server: Flaky

    def _answer(self) -> None:
        self.server.seen.append((self.command, time.monotonic(), self.headers.get("X-App-ID")))
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers = self.server.failures.pop(0) if self.server.failures else (200, {})
        body = json.dumps(OK if status == 200 else {"error": {"message": "no", "type": "t", "code": None}}).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    server = Flaky()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: Flaky, max_retries: int | None = None) -> Perilune:
    return Perilune(api_key="k", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", app_id="app-1",
                    max_retries=max_retries)


def test_503_is_retried_after_its_retry_after(flaky: Flaky) -> None:
    flaky.failures = [(503, {"Retry-After": "1"})]
    with _client(flaky) as c:
        assert c.balance.retrieve().balance_usd == Decimal("1.5")
    (_, t1, app1), (_, t2, app2) = flaky.seen
    assert t2 - t1 >= 1.0 and app1 == app2 == "app-1"


def test_post_is_retried_on_429_but_not_on_502(flaky: Flaky) -> None:
    flaky.failures = [(429, {"Retry-After": "0"})]
    with _client(flaky) as c:
        c.balance.set_alerts(thresholds_usd=["1"])
        assert len(flaky.seen) == 2
        flaky.failures = [(502, {})]
        with pytest.raises(p.UpstreamUnavailableError):
            c.balance.set_alerts(thresholds_usd=["1"])
        assert len(flaky.seen) == 3  # a POST that may have run is never repeated


def test_get_is_retried_on_502_with_backoff(flaky: Flaky) -> None:
    flaky.failures = [(502, {}), (504, {})]
    with _client(flaky) as c:
        c.balance.retrieve()
    assert [m for m, _, _ in flaky.seen] == ["GET", "GET", "GET"]


def test_retries_are_bounded(flaky: Flaky) -> None:
    flaky.failures = [(503, {"Retry-After": "0"})] * 5
    with _client(flaky, max_retries=2) as c, pytest.raises(p.ServiceUnavailableError):
        c.balance.retrieve()
    assert len(flaky.seen) == 3


def test_a_too_long_retry_after_is_raised_at_once(flaky: Flaky) -> None:
    flaky.failures = [(429, {"Retry-After": "3600"})]
    with _client(flaky) as c, pytest.raises(p.RateLimitError) as e:
        c.balance.retrieve()
    assert e.value.retry_after == 3600 and len(flaky.seen) == 1
