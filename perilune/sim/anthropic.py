"""Anthropic personality: Messages API (stream and not), count_tokens, models.

Event sequence of a stream: ``message_start``, then per content block
``content_block_start`` (a ``ping`` follows the first one),
``content_block_delta``... (``text_delta`` / ``thinking_delta`` +
``signature_delta`` / ``input_json_delta``), ``content_block_stop``; then
``message_delta`` (stop_reason, stop_sequence, cumulative usage) and
``message_stop``.  Errors: ``{"type": "error", "error": {"type", "message"}}``.

Prompt caching is emulated statelessly: if any tool, system block or message
block carries ``cache_control``, every input token up to and including the last
such block is reported as ``cache_creation_input_tokens`` — or as
``cache_read_input_tokens`` when the request has the header ``x-sim-cache: read``;
``input_tokens`` excludes both (Anthropic semantics).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from perilune.tokens import count_tokens, split_tokens

from . import text as T
from .common import (
    RETRY_AFTER_S,
    Request,
    Response,
    StreamPlan,
    coalesce,
    dumps,
    group_pieces,
    json_response,
    new_id,
)

_TOOL_WORDS = re.compile(r"\b(?:weather|tools?)\b", re.IGNORECASE)
_TYPES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (simulated)."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}
SSE = b"text/event-stream; charset=utf-8"


def error(status: int, message: str | None = None, type_: str | None = None) -> Response:
    d_type, d_msg = _TYPES.get(status, ("api_error", "Internal server error"))
    rid = new_id("req_")
    body = {
        "type": "error",
        "error": {"type": type_ or d_type, "message": message or d_msg},
        "request_id": rid,
    }
    headers = [(b"request-id", rid.encode())]
    if status == 429:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    return json_response(status, body, headers)


def event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def stream_error_frame() -> bytes:
    return event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def check_auth(req: Request, key: str) -> Response | None:
    given = req.header(b"x-api-key")
    if given is None:  # newer SDKs send the key as a Bearer token
        auth = req.header(b"authorization")
        if auth and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
    if given is None:
        return error(401, "x-api-key header is required")
    if given != key:
        return error(401, "invalid x-api-key")
    return None


# --------------------------------------------------------------------------- counting


class _Counter:
    """Counts input tokens in Anthropic order (tools, system, messages) and
    remembers the position of the last ``cache_control`` breakpoint."""

    def __init__(self) -> None:
        self.total = 0
        self.cached = 0
        self.ttl_1h = False

    def mark(self, block: Any) -> None:
        cc = block.get("cache_control") if isinstance(block, dict) else None
        if isinstance(cc, dict):
            self.cached = self.total
            self.ttl_1h = cc.get("ttl") == "1h"

    def block(self, b: Any) -> None:
        if isinstance(b, str):
            self.total += count_tokens(b)
            return
        if not isinstance(b, dict):
            return
        typ = b.get("type")
        if typ == "text":
            self.total += count_tokens(str(b.get("text", "")))
        elif typ == "tool_use":
            self.total += count_tokens(str(b.get("name", ""))) + count_tokens(
                dumps(b.get("input", {})).decode()
            )
        elif typ == "tool_result":
            c = b.get("content")
            for sub in c if isinstance(c, list) else [c or ""]:
                self.block(sub)
        elif typ == "thinking":
            self.total += count_tokens(str(b.get("thinking", "")))
        elif typ in ("image", "document"):
            self.total += T.IMAGE_TOKENS
        self.mark(b)


def count_input(body: dict[str, Any]) -> tuple[_Counter, str, bool]:
    """Returns the counter, the last user text, and whether the last user turn
    carries tool results."""
    c = _Counter()
    for tool in body.get("tools") or ():
        c.total += count_tokens(dumps(tool).decode())
        c.mark(tool)
    system = body.get("system")
    if system:
        c.total += T.PER_MESSAGE_TOKENS
        for b in system if isinstance(system, list) else [system]:
            c.block(b)
    last_user, has_result = "", False
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        c.total += T.PER_MESSAGE_TOKENS
        content = m.get("content")
        blocks = content if isinstance(content, list) else [content or ""]
        for b in blocks:
            c.block(b)
        if m.get("role") == "user":
            last_user = "".join(
                b if isinstance(b, str) else str(b.get("text", ""))
                for b in blocks
                if isinstance(b, (str, dict))
            )
            has_result = any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)
    return c, last_user, has_result


def _usage(c: _Counter, read: bool, output: int) -> dict[str, Any]:
    create = 0 if read else c.cached
    return {
        "input_tokens": c.total - c.cached,
        "cache_creation_input_tokens": create,
        "cache_read_input_tokens": c.cached if read else 0,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0 if c.ttl_1h else create,
            "ephemeral_1h_input_tokens": create if c.ttl_1h else 0,
        },
        "output_tokens": output,
        "service_tier": "standard",
    }


# --------------------------------------------------------------------------- messages


def _pick_tool(body: dict[str, Any], last_user: str, has_result: bool) -> tuple[dict[str, Any] | None, bool]:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("name")]
    choice = body.get("tool_choice") or {"type": "auto"}
    ctype = choice.get("type") if isinstance(choice, dict) else "auto"
    if not tools or ctype == "none":
        return None, False
    if ctype == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), tools[0]), True
    if ctype == "any":
        return tools[0], True
    if has_result or not _TOOL_WORDS.search(last_user):
        return None, False
    return tools[0], False


def messages(req: Request) -> Response | StreamPlan:
    body = req.json()
    if not isinstance(body, dict):
        return error(400, "There was an issue with the JSON body of your request.")
    if req.config.strict and req.header(b"anthropic-version") is None:
        return error(400, "anthropic-version: header is required")
    model = body.get("model")
    if not model:
        return error(400, "model: Field required")
    if body.get("max_tokens") is None:
        return error(400, "max_tokens: Field required")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return error(400, "messages: Field required")
    model, max_tokens = str(model), int(body["max_tokens"])
    counter, last_user, has_result = count_input(body)
    limit_ctx = req.knobs.context_tokens
    if limit_ctx and counter.total > limit_ctx:
        return error(400, f"prompt is too long: {counter.total} tokens > {limit_ctx} maximum")
    seed = T.seed_of(model, last_user)
    thinking = body.get("thinking") or {}
    think_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    tool, forced = _pick_tool(body, last_user, has_result)
    if think_on and thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or 0)
        if budget < 1024:
            return error(400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= max_tokens:
            return error(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
    if think_on and forced:
        return error(400, "Thinking may not be enabled when tool_choice forces tool use.")

    blocks: list[tuple[dict[str, Any], list[str]]] = []  # (block, pieces)
    output = 0
    stop_reason, stop_seq = "end_turn", None
    if think_on:
        tpieces = T.generate(seed ^ 0x5BD1E995, T.THINKING_TOKENS)
        sig = base64.b64encode(b"perilune-sim:" + str(seed).encode()).decode()
        blocks.append(({"type": "thinking", "thinking": "".join(tpieces), "signature": sig}, tpieces))
        output += len(tpieces)
    if tool is not None:
        name = str(tool["name"])
        if not forced:
            pre = split_tokens(f"I'll use the {name} tool.")
            blocks.append(({"type": "text", "text": "".join(pre)}, pre))
            output += len(pre)
        args = T.value_for_schema(tool.get("input_schema") or {})
        args_pieces = split_tokens(dumps(args).decode())
        blocks.append(
            ({"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": args}, args_pieces)
        )
        output += count_tokens(name) + len(args_pieces)
        stop_reason = "tool_use"
    else:
        pieces = T.generate(seed, req.knobs.output_tokens)
        stops = [s for s in body.get("stop_sequences") or () if isinstance(s, str) and s]
        if stops:
            txt = "".join(pieces)
            hits = [(txt.find(s), s) for s in stops if txt.find(s) >= 0]
            if hits:
                cut, stop_seq = min(hits)
                pieces, stop_reason = split_tokens(txt[:cut]), "stop_sequence"
        limit = max_tokens - output
        if len(pieces) > limit:
            pieces, stop_reason, stop_seq = pieces[: max(limit, 0)], "max_tokens", None
        blocks.append(({"type": "text", "text": "".join(pieces)}, pieces))
        output += len(pieces)

    use = _usage(counter, req.knobs.cache_read, output)
    mid = new_id("msg_")
    rid = new_id("req_")
    headers = [(b"request-id", rid.encode())]
    if not body.get("stream"):
        msg = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [b for b, _ in blocks],
            "stop_reason": stop_reason,
            "stop_sequence": stop_seq,
            "usage": use,
        }
        return Response(200, dumps(msg), headers=headers, gen_tokens=output)

    start_usage = dict(use, output_tokens=1)
    head = [
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
    ]
    events: list[tuple[bytes, int]] = []
    for idx, (block, pieces) in enumerate(blocks):
        typ = block["type"]
        if typ == "thinking":
            start: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        elif typ == "text":
            start = {"type": "text", "text": ""}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        events.append(
            (
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": idx, "content_block": start},
                ),
                0,
            )
        )
        if idx == 0:
            events.append((event("ping", {"type": "ping"}), 0))
        if typ == "tool_use":
            events.append((_delta(idx, {"type": "input_json_delta", "partial_json": ""}), 0))
        for g in group_pieces(pieces, req.knobs.chunks):
            s = "".join(g)
            if typ == "thinking":
                d: dict[str, Any] = {"type": "thinking_delta", "thinking": s}
            elif typ == "text":
                d = {"type": "text_delta", "text": s}
            else:
                d = {"type": "input_json_delta", "partial_json": s}
            events.append((_delta(idx, d), len(g)))
        if typ == "thinking":
            events.append((_delta(idx, {"type": "signature_delta", "signature": block["signature"]}), 0))
        events.append((event("content_block_stop", {"type": "content_block_stop", "index": idx}), 0))
    end_usage = {
        k: use[k]
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    }
    events.append(
        (
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_seq},
                    "usage": end_usage,
                },
            ),
            0,
        )
    )
    events.append((event("message_stop", {"type": "message_stop"}), 0))
    content, weights, tail = coalesce(events)
    return StreamPlan(head, content, weights, tail, stream_error_frame(), SSE, headers)


def _delta(idx: int, d: dict[str, Any]) -> bytes:
    return event("content_block_delta", {"type": "content_block_delta", "index": idx, "delta": d})


def count_tokens_endpoint(req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not body.get("model"):
        return error(400, "model: Field required")
    if not isinstance(body.get("messages"), list):
        return error(400, "messages: Field required")
    counter, _, _ = count_input(body)
    return json_response(200, {"input_tokens": counter.total})


SIM_MODELS = ("claude-sim-sonnet", "claude-sim-haiku", "claude-sim-opus")


def models(req: Request) -> Response:
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": m.replace("-", " ").title(),
            "created_at": "2025-01-01T00:00:00Z",
        }
        for m in SIM_MODELS
    ]
    return json_response(
        200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )
