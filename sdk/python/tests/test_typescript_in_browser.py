"""The TypeScript SDK's built ``dist/`` in a real browser (Debian's headless Chromium, driven by
Playwright): no Node API, only fetch and web streams. The page is served at the gateway's own origin
(intercepted by Playwright), so its calls reach the real testbed gateway without CORS."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from testbed import Testbed

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make .venv/.installed-test)")

DIST = Path(__file__).resolve().parents[2] / "typescript" / "dist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE = """<!doctype html><script type="module">
import { Perilune, PeriluneError, InsufficientBalanceError } from "./dist/index.js";
const cfg = JSON.parse(document.getElementById("cfg").textContent);
const out = {};
try {
try { new Perilune(); } catch (e) { out.noKey = e instanceof PeriluneError && /PERILUNE_API_KEY/.test(e.message); }
const c = new Perilune({ apiKey: cfg.key, baseURL: cfg.base, appId: "browser" });
const hi = [{ role: "user", content: "Hello!" }];
const r = await c.chat.create({ model: "sim-gpt", messages: hi });
out.cost = r.usage.total_cost_usd; out.ttft = r.usage.ttft_ms; out.text = r.choices[0].message.content;
const s = await c.chat.stream({ model: "sim-gpt", messages: hi });
let chunks = 0;
for await (const _ of s) chunks++;
out.chunks = chunks; out.streamText = s.text; out.streamCost = s.usage.total_cost_usd;
const m = await (await c.messages.stream({ model: "sim-claude", max_tokens: 16, messages: hi })).untilDone();
out.messageCost = m.usage.total_cost_usd;
try { await new Perilune({ apiKey: cfg.poor, baseURL: cfg.base }).chat.create({ model: "sim-gpt", messages: hi }); }
catch (e) { out.poor = e instanceof InsufficientBalanceError && e.status === 402; }
window.result = out;
} catch (e) { window.result = { error: `${e?.name}: ${e?.message}` }; }
</script><script type="application/json" id="cfg">CONFIG</script>"""


def test_the_typescript_sdk_runs_in_a_browser(tb: Testbed) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: the gateway's scripts/test-deps.sh installs it")
    origin = tb.base_url.removesuffix("/v1")
    config = json.dumps({"key": tb.api_key, "poor": tb.poor_key, "base": tb.base_url})

    def serve(route: Any) -> None:
        name = route.request.url.removeprefix(origin + "/__sdk__/")
        if name == "index.html":
            route.fulfill(status=200, content_type="text/html", body=PAGE.replace("CONFIG", config))
        elif name.startswith("dist/") and (DIST / name.removeprefix("dist/")).is_file():
            code = (DIST / name.removeprefix("dist/")).read_text()
            route.fulfill(status=200, content_type="text/javascript", body=code)
        else:
            route.fulfill(status=404, body="")

    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(origin + "/__sdk__/**", serve)
            page.goto(origin + "/__sdk__/index.html")
            page.wait_for_function("window.result !== undefined || false", timeout=30_000)
            result = page.evaluate("window.result")
        finally:
            browser.close()
    assert errors == [] and "error" not in result, (errors, result)
    assert result["noKey"] is True and result["poor"] is True
    assert Decimal(result["cost"]) > 0 and result["ttft"] > 0 and result["text"]  # money: decimal strings
    assert result["chunks"] > 2 and result["streamText"] and result["streamCost"] == result["cost"]
    assert Decimal(result["messageCost"]) > 0
