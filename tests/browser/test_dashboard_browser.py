"""The dashboard in headless Chromium (Playwright): sign in, filter the logs, open a request, see the
charts; desktop and phone width (390 px). Screenshots go to test-artifacts/ for a human to look at."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, StartGateway

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    g = start_gateway(env={"PERILUNE_USAGE_FLUSH_S": "0.05"})
    h = {"Authorization": f"Bearer {g.key}"}
    traffic: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("web-chat", {"model": "sim-gpt", "observability": True, "messages": [
            {"role": "system", "content": "You are a concise tour guide."},
            {"role": "user", "content": "What should I see in Lisbon in one day?"}]}, {}),
        ("web-chat", {"model": "sim-gpt", "stream": True, "observability": True, "messages": [
            {"role": "user", "content": "What is the weather in Paris?"}], "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}, {}),
        ("support-bot", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Reset my password"}]},
         {}),
        ("support-bot", {"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]},
         {"x-sim-fault": "500"}),
        ("batch-etl", {"model": "sim-embed", "input": ["alpha", "beta"]}, {}),
    ]
    for i in range(12):
        app, body, extra = traffic[i % len(traffic)]
        path = "/embeddings" if "input" in body else "/chat/completions"
        httpx.post(g.v1 + path, json=body, headers={**h, "X-App-ID": app, **extra}, timeout=30)
    deadline = time.monotonic() + 10
    while len(httpx.get(g.v1 + "/usage/records", headers=h, params={"limit": 50}).json()["data"]) < 12:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return g


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def sign_in(browser: Any, gw: Gateway, viewport: dict[str, int], key: str | None = None) -> Any:
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(gw.url + "/dashboard")
    assert page.url.endswith("/dashboard/login?next=%2Fdashboard")
    page.fill("#key", key or gw.key)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/logs")
    page.errors = errors
    return page


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, f"page is {width}px wide"


def test_sign_in_filter_detail_and_charts(browser: Any, gw: Gateway, artifacts: Path) -> None:
    page = sign_in(browser, gw, DESKTOP)
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("perilune_session", True, "Strict")]
    assert page.evaluate("document.cookie") == ""  # no script can read the session
    assert gw.key not in page.url and all(gw.key not in c["value"] for c in cookies)
    rows = page.locator("table.logs tbody tr")
    assert rows.count() == 12
    page.screenshot(path=str(artifacts / "dashboard-logs.png"), full_page=True)

    page.fill("input[name=app]", "web-chat")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/dashboard/logs?*app=web-chat*")
    assert rows.count() == 6
    assert set(page.locator("table.logs tbody tr td:nth-child(3)").all_inner_texts()) == {"web-chat"}
    page.select_option("select[name=status]", "ok")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**status=ok**")
    page.screenshot(path=str(artifacts / "dashboard-logs-filtered.png"), full_page=True)

    # the newest web-chat request streamed a tool call; the one before asked about Lisbon
    page.locator("table.logs tbody tr a.rowlink").nth(1).click()
    page.wait_for_url("**/dashboard/logs/req_*")
    assert "What should I see in Lisbon in one day?" in page.inner_text("#payload")
    assert page.locator(".msg.role-system").count() == 1
    assert "Tokens per second" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "dashboard-log-detail.png"), full_page=True)
    page.go_back()
    page.locator("table.logs tbody tr a.rowlink").first.click()
    page.wait_for_url("**/dashboard/logs/req_*")
    assert "get_weather" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "dashboard-log-detail-tool-call.png"), full_page=True)

    page.click("nav.nav >> text=Analytics")
    page.select_option("select[name=range]", "24h")
    page.wait_for_url("**range=24h**")
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    assert page.locator("#chart-requests svg.chart rect").count() >= 3
    legend = page.locator("#chart-spend .legend li").all_inner_texts()
    assert {"web-chat", "support-bot", "batch-etl"} <= {t.strip() for t in legend}
    page.screenshot(path=str(artifacts / "dashboard-analytics.png"), full_page=True)
    page.select_option("select[name=by]", "model")
    page.wait_for_url("**by=model**")
    assert "gpt-4o-mini" in page.inner_text("#chart-requests")
    for path, name in (("/dashboard/models?input=image", "models"), ("/dashboard/keys", "keys"),
                       ("/dashboard/balance", "balance")):
        page.goto(gw.url + path)
        page.screenshot(path=str(artifacts / f"dashboard-{name}.png"), full_page=True)
    assert page.errors == []


def test_phone_width(browser: Any, gw: Gateway, artifacts: Path) -> None:
    page = sign_in(browser, gw, PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(artifacts / "dashboard-logs-390.png"), full_page=True)
    page.locator("table.logs tbody tr a.rowlink").first.click()
    page.wait_for_url("**/dashboard/logs/req_*")
    no_sideways_scroll(page)
    page.screenshot(path=str(artifacts / "dashboard-log-detail-390.png"), full_page=True)
    for path, name in (("/dashboard/analytics?range=24h", "analytics"), ("/dashboard/models", "models"),
                       ("/dashboard/keys", "keys"), ("/dashboard/balance", "balance")):
        page.goto(gw.url + path)
        no_sideways_scroll(page)
        page.screenshot(path=str(artifacts / f"dashboard-{name}-390.png"), full_page=True)
        page.screenshot(path=str(artifacts / f"dashboard-{name}-390-top.png"))  # the first screen
    assert page.errors == []


def test_user_key_cannot_reach_or_revoke_admin_keys(browser: Any, gw: Gateway, artifacts: Path) -> None:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    boss = httpx.post(gw.url + "/admin/keys", headers=admin,
                      json={"account_id": gw.account, "name": "account-admin", "role": "admin"}).json()
    peer = httpx.post(gw.url + "/admin/keys", headers=admin, json={"account_id": gw.account, "name": "peer-key"}).json()
    page = sign_in(browser, gw, DESKTOP)
    page.click("nav.nav >> text=Keys")
    page.wait_for_url("**/dashboard/keys")
    table = page.inner_text("table")
    assert "peer-key" in table and "account-admin" not in table and boss["id"] not in page.content()
    assert page.locator(f"form[action='/dashboard/keys/{boss['id']}/revoke']").count() == 0
    page.screenshot(path=str(artifacts / "dashboard-keys-user.png"), full_page=True)
    # forge the revoke form for the admin key from inside the signed-in page, with its CSRF token
    status = page.evaluate("""async (id) => {
        const body = new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value});
        const r = await fetch(`/dashboard/keys/${id}/revoke`, {method: "POST", body, redirect: "manual"});
        return r.status;
    }""", boss["id"])
    assert status == 404
    assert [e for e in page.errors if "404" not in e] == []
    page.errors.clear()  # the console's note of that 404 is expected
    page.goto(gw.url + "/dashboard/keys?account_id=" + gw.account)
    assert "account-admin" not in page.inner_text("main")
    r = httpx.get(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {boss['key']}"})
    assert r.status_code == 200  # the admin key still works
    # the user key's own user keys it can manage: revoke the peer from the page
    page.once("dialog", lambda d: d.accept())
    page.locator(f"form[action='/dashboard/keys/{peer['id']}/revoke'] button").click()
    page.wait_for_url("**/dashboard/keys?revoked=*")
    assert "revoked" in page.inner_text("main")
    # signing out ends the session: the browser's old cookie no longer opens a page
    cookie = next(c for c in page.context.cookies() if c["name"] == "perilune_session")
    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/login")
    replay = httpx.get(gw.url + "/dashboard/keys", cookies={"perilune_session": cookie["value"]})
    assert replay.status_code == 303
    assert page.errors == []
