"""What Claude Code sends to /v1/messages (mid-conversation system turns with the mid-conversation-system
beta, thinking with budget_tokens, interleaved-thinking and context-management betas, context_management,
cache_control everywhere), over each simulator personality: never a 400, a full answer, streamed."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import Gateway, StartGateway
from tests.integration.test_responses_api import CONFIG

BETAS = ("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
         "mid-conversation-system-2026-04-07")
MODELS = ("sim-gpt", "sim-claude", "sim-gemini")
TOOL: dict[str, Any] = {"name": "Bash", "description": "Run a shell command",
                        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                                         "required": ["command"]},
                        "cache_control": {"type": "ephemeral"}}


def claude_code_body(model: str) -> dict[str, Any]:
    return {
        # Claude Code asks for 32000 whatever the model; sim-gpt's limit is 16384 (lowered, not refused)
        "model": model, "max_tokens": 32000, "stream": True, "temperature": 1,
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                   {"type": "text", "text": "Work in /repo.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is the weather? Use tools.",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "<system-reminder>Today's date is 2026-12-01.</system-reminder>"},
        ],
        "tools": [TOOL],
        "metadata": {"user_id": "user_abc_account__session_123"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(CONFIG)


@pytest.mark.parametrize("model", MODELS)
def test_claude_code_request_is_served(gw: Gateway, model: str) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0,
                                 default_headers={"anthropic-beta": BETAS})
    body = claude_code_body(model)
    body.pop("stream")
    extra = {k: body.pop(k) for k in ("temperature", "context_management")}
    with client.messages.stream(**body, extra_body=extra) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.stop_reason in ("tool_use", "end_turn") and final.content
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    count = httpx.post(gw.v1 + "/messages/count_tokens", headers={"x-api-key": gw.key, "anthropic-beta": BETAS,
                                                                  "anthropic-version": "2023-06-01"},
                       json={k: body[k] for k in ("model", "system", "messages", "tools")})
    assert count.status_code == 200 and count.json()["input_tokens"] > 0


def test_system_turn_reaches_the_anthropic_upstream_natively(gw: Gateway) -> None:
    """Natively passed: the system turn counts in the prompt (the simulator counts every message)."""
    base = claude_code_body("sim-claude")
    without = {**base, "stream": False, "messages": base["messages"][:1]}
    headers = {"x-api-key": gw.key, "anthropic-version": "2023-06-01", "anthropic-beta": BETAS}
    a = httpx.post(gw.v1 + "/messages", headers=headers, json={**base, "stream": False}, timeout=30).json()
    b = httpx.post(gw.v1 + "/messages", headers=headers, json=without, timeout=30).json()
    assert a["usage"]["input_tokens"] > b["usage"]["input_tokens"]
