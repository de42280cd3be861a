"""The dashboard as an operator reads it (headless Chromium): an Anthropic request's system prompt and
answer in Log detail, one colour per app across charts, times with their zone, exact money, the Balance
page's spend and every ledger entry a page at a time, and every catalog price. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_dashboard_browser import CHROMIUM, DESKTOP, sign_in
from tests.conftest import Gateway, StartGateway, default_config

playwright = pytest.importorskip("playwright.sync_api")

TOPUPS = 55  # more than one ledger page (50)


def png_base64() -> str:
    """A 4x4 red PNG, made here."""
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    config = default_config("{sim_url}") + """
[[providers]]
name = "sim-anthropic"
type = "anthropic"
base_url = "{sim_url}"
"""
    g = start_gateway(config, env={"PERILUNE_USAGE_FLUSH_S": "0.05"}, credit_usd="9.834521")
    h = {"Authorization": f"Bearer {g.key}"}
    r = httpx.post(g.v1 + "/messages", headers={"x-api-key": g.key, "anthropic-version": "2023-06-01",
                                               "X-App-ID": "claude-app"}, timeout=30,
                   json={"model": "sim-claude", "max_tokens": 64, "observability": True,
                         "system": "You answer as a ship's captain.", "messages": [
                             {"role": "user", "content": "Where are we headed?"}]})
    assert r.status_code == 200, r.text
    r = httpx.post(g.v1 + "/messages", headers={"x-api-key": g.key, "anthropic-version": "2023-06-01",
                                               "X-App-ID": "claude-tools"}, timeout=30,
                   json={"model": "sim-claude", "max_tokens": 64, "observability": True, "messages": [
                       {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                                    {"type": "image", "source": {"type": "base64",
                                                                                 "media_type": "image/png",
                                                                                 "data": png_base64()}}]},
                       {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "zoom",
                                                          "input": {"factor": 2}}]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
                                                     "content": "zoomed: a red square"}]}],
                         "tools": [{"name": "zoom", "input_schema": {"type": "object"}}]})
    assert r.status_code == 200, r.text
    for i in range(6):  # app "busy" has the most requests, "quiet" the fewest
        app = "busy" if i < 4 else "quiet"
        httpx.post(g.v1 + "/chat/completions", headers={**h, "X-App-ID": app}, timeout=30,
                   json={"model": "sim-gpt", "messages": [{"role": "user", "content": f"hello {i}"}]})
    admin = {"Authorization": f"Bearer {g.admin_key}"}
    for i in range(TOPUPS):
        r = httpx.post(f"{g.url}/admin/accounts/{g.account}/topup", headers=admin,
                       json={"amount_usd": "0.01", "reason": f"top-up {i}"})
        assert r.status_code == 201, r.text
    deadline = time.monotonic() + 10
    while len(httpx.get(g.v1 + "/usage/records", headers=h).json()["data"]) < 8:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return g


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_anthropic_log_detail_shows_system_prompt_and_answer(browser: Any, gw: Gateway, artifacts: Path) -> None:
    page = sign_in(browser, gw, DESKTOP)
    cells = page.locator("table.logs tbody tr td.c-time time")
    times = cells.all_inner_texts()  # the reader's zone, named; the UTC time as the tooltip
    assert times and all(re.search(r"\d\d:\d\d:\d\d (UTC|GMT[+-]?[\d:]*|[A-Z]{2,5})$", t) for t in times), times
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", cells.first.get_attribute("title") or "")
    page.locator("table.logs tbody tr", has_text="claude-app").locator("a.rowlink").click()
    page.wait_for_url("**/dashboard/logs/req_*")
    request = page.inner_text("#payload")
    assert "You answer as a ship's captain." in request and "Where are we headed?" in request
    assert page.locator("#payload .msg.role-system").count() == 1
    response = page.inner_text("#response")
    assert "No output." not in response and page.locator("#response .msg pre.text").count() >= 1
    assert "end_turn" in response.lower() or "max_tokens" in response.lower()
    page.screenshot(path=str(artifacts / "dashboard-log-detail-anthropic.png"), full_page=True)
    assert page.errors == []


def test_anthropic_tool_use_tool_result_and_image(browser: Any, gw: Gateway, artifacts: Path) -> None:
    page = sign_in(browser, gw, DESKTOP)
    page.locator("table.logs tbody tr", has_text="claude-tools").locator("a.rowlink").click()
    page.wait_for_url("**/dashboard/logs/req_*")
    request = page.inner_text("#payload")
    assert "What is in this picture?" in request and "zoom" in request and "toolu_01" in request
    assert "zoomed: a red square" in page.inner_text("#payload .call.result")
    assert '"factor": 2' in page.inner_text("#payload .call:not(.result)")
    img = page.locator("#payload img.shot")
    assert img.count() == 1 and page.evaluate("document.querySelector('#payload img.shot').naturalWidth") == 4
    assert "No output." not in page.inner_text("#response")
    page.screenshot(path=str(artifacts / "dashboard-log-detail-anthropic-tools.png"), full_page=True)
    assert page.errors == []  # the inline image is allowed by the CSP (img-src data:)


def test_one_colour_per_app_across_charts(browser: Any, gw: Gateway, artifacts: Path) -> None:
    page = sign_in(browser, gw, DESKTOP)
    page.goto(gw.url + "/dashboard/analytics?range=24h&by=app")
    colours: dict[str, set[str]] = {}
    for chart in ("spend", "requests", "tokens"):
        for li in page.locator(f"#chart-{chart} ul.legend li").all():
            colours.setdefault(li.get_attribute("data-series") or "", set()).add(li.get_attribute("data-colour") or "")
    assert {"busy", "quiet", "claude-app", "claude-tools"} <= set(colours)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)  # and different apps differ
    assert colours["busy"] == {"#0072B2"}  # the app with the most requests takes the first colour
    page.screenshot(path=str(artifacts / "dashboard-analytics-colours.png"), full_page=True)


def test_balance_exact_with_spend_and_every_ledger_entry(browser: Any, gw: Gateway, artifacts: Path) -> None:
    api = httpx.get(gw.v1 + "/balance", headers={"Authorization": f"Bearer {gw.key}"}).json()
    page = sign_in(browser, gw, DESKTOP)
    page.goto(gw.url + "/dashboard/balance")
    shown = page.inner_text("#balance")
    assert Decimal(shown.replace("$", "").replace(",", "")) == Decimal(api["balance_usd"]), (shown, api)
    assert len(shown.split(".")[1]) > 2  # not rounded to cents
    assert Decimal(page.inner_text("#spend-today").lstrip("$")) == Decimal(api["spend_today_usd"]) > 0
    assert Decimal(page.inner_text("#spend-month").lstrip("$")) == Decimal(api["spend_month_usd"])
    rows = page.locator("section.card table tbody tr")
    assert rows.count() == 50
    first_page = rows.all_inner_texts()
    page.screenshot(path=str(artifacts / "dashboard-balance.png"), full_page=True)
    page.click("#ledger-next")
    page.wait_for_url("**cursor=**")
    rest = rows.all_inner_texts()
    everything = first_page + rest
    assert sum("top-up " in r for r in everything) == TOPUPS
    assert any("test suite" in r for r in rest)  # the oldest entry, the starting top-up, is reachable
    assert sum("charge" in r for r in everything) == 8
    assert not set(first_page) & set(rest)
    page.click("#ledger-first")
    page.wait_for_url(re.compile(r".*/dashboard/balance$"))
    page.goto(gw.url + "/dashboard/balance?cursor=garbage")
    assert "not one this dashboard made" in page.inner_text("main")


def test_models_show_every_catalog_price(browser: Any, gw: Gateway, artifacts: Path) -> None:
    page = sign_in(browser, gw, DESKTOP)
    page.goto(gw.url + "/dashboard/models?q=sim-")
    image = page.locator("table.models tbody tr", has_text="sim-image")
    assert "$0.04 per image" in image.inner_text()
    assert "$0.006 per audio minute" in page.locator("table.models tbody tr", has_text="sim-whisper").inner_text()
    claude = page.locator("table.models tbody tr", has_text="sim-claude").inner_text()
    assert "$3" in claude and "$15" in claude and "cache read $0.3/M" in claude and "cache write $3.75/M" in claude
    page.screenshot(path=str(artifacts / "dashboard-models-prices.png"), full_page=True)
