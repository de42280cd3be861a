"""Alert webhooks cannot be used for SSRF: refused when set (400 naming webhook_url), refused again
when sent (a URL already stored), never redirected. Real gateway, real hook servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from perilune.accounting.pricing import to_pico
from perilune.store.db import Database
from perilune.store.ledger import LedgerStore
from tests.conftest import Gateway, StartGateway, default_config

MSG = [{"role": "user", "content": "Hello"}]
LOCAL_HOOKS = '\n[outbound]\nallow_http = true\nallow_hosts = ["127.0.0.1"]\n'


class Hook:
    """A local HTTP server that records POSTs and answers with ``status`` (and ``location``)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    made: list[Hook] = []
    yield made
    for h in made:
        h.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("url", "why"), [
    ("http://203.0.113.9/hook", "https://"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:8787/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[::ffff:169.254.169.254]/", "link-local"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.251/hook", "multicast"),
    ("https://user:pw@hooks.example/", "user name"),
    ("https://hooks.example/\u0000", "control"),
    ("gopher://hooks.example/", "https://"),
])
def test_refused_when_set(gateway: Gateway, url: str, why: str) -> None:
    r = httpx.post(gateway.v1 + "/balance/alerts", headers=auth(gateway.key), json={"webhook_url": url})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "webhook_url" and why in err["message"], err
    r = httpx.put(gateway.url + f"/admin/accounts/{gateway.account}/alerts",
                  headers=auth(gateway.admin_key), json={"webhook_url": url})
    assert r.status_code == 400 and r.json()["error"]["param"] == "webhook_url"


def test_public_https_url_is_accepted(gateway: Gateway) -> None:
    # hooks.example does not resolve here: accepted when set, checked again when an alert is sent
    r = httpx.post(gateway.v1 + "/balance/alerts", headers=auth(gateway.key),
                   json={"webhook_url": "https://hooks.example/perilune"})
    assert r.status_code == 200 and r.json()["alerts"]["webhook_url"] == "https://hooks.example/perilune"
    r = httpx.post(gateway.v1 + "/balance/alerts", headers=auth(gateway.key), json={"webhook_url": None})
    assert r.status_code == 200


def _spend_below_threshold(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
    for _ in range(4):  # about 50 micro-USD each: crosses 0.0009
        client.chat.completions.create(model="sim-gpt", messages=MSG, max_tokens=16)  # type: ignore[arg-type]


def test_stored_loopback_url_is_refused_at_send_time(start_gateway: StartGateway, hooks: list[Hook]) -> None:
    hook = Hook()
    hooks.append(hook)
    gw = start_gateway(credit_usd="0.001")  # default policy: https only, no loopback
    db = Database(f"sqlite:///{gw.home / 'perilune.db'}")  # e.g. stored before this check existed
    assert LedgerStore(db).set_alerts(gw.account, [to_pico(Decimal("0.0009"))], hook.url)
    db.dispose()
    time.sleep(1.0)  # the accountant's refresh picks up the settings
    _spend_below_threshold(gw)
    time.sleep(1.5)
    bal = httpx.get(gw.v1 + "/balance", headers=auth(gw.key)).json()
    assert Decimal(bal["balance_usd"]) < Decimal("0.0009")  # the alert was due ...
    assert bal["alerts"]["webhook_url"] == hook.url
    assert hook.received == []  # ... and not sent to loopback


def test_redirects_are_not_followed(start_gateway: StartGateway, hooks: list[Hook]) -> None:
    target = Hook()
    redirector = Hook(status=302, location=target.url)
    hooks.extend([target, redirector])
    gw = start_gateway(config=default_config("{sim_url}") + LOCAL_HOOKS, credit_usd="0.001")
    r = httpx.post(gw.v1 + "/balance/alerts", headers=auth(gw.key),
                   json={"thresholds_usd": ["0.0009"], "webhook_url": redirector.url})
    assert r.status_code == 200, r.text
    _spend_below_threshold(gw)
    deadline = time.monotonic() + 5
    while not redirector.received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # a retry would come after 0.5 s
    assert len(redirector.received) == 1 and redirector.received[0]["type"] == "balance.low"
    assert target.received == []
