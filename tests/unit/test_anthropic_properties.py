"""Property tests: text and tool-call arguments survive the dialect round trips, and streamed and
non-streamed conversions agree, whatever the content and however the stream is cut into pieces."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from perilune._sse import SSEEvent
from perilune.providers.anthropic import AnthropicChatDecoder, to_chat_completion
from perilune.providers.anthropic_request import to_anthropic
from perilune.schema.convert import EventEncoder, to_anthropic_message, to_openai_request
from tests.unit.test_anthropic_convert import accumulate

JSON = dict[str, Any]
SETTINGS = settings(max_examples=150, deadline=None)

texts = st.text(min_size=1, max_size=24)
scalars = st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=8), values, max_size=4)
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)


def split(data: st.DataObject, s: str) -> list[str]:
    """``s`` cut into 1..n non-empty pieces at random points."""
    if len(s) <= 1:
        return [s]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(s) - 1), max_size=6)))
    bounds = [0, *cuts, len(s)]
    return [s[a:b] for a, b in pairwise(bounds)]


# ---- conversations ----------------------------------------------------------------------------


@st.composite
def openai_conversations(draw: st.DrawFn) -> list[JSON]:
    msgs: list[JSON] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(texts)})
    n = 0
    for _ in range(draw(st.integers(1, 4))):
        msgs.append({"role": "user", "content": draw(texts)})
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            n += 1
            calls.append(
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()},
                }
            )
        reply: JSON = {"role": "assistant", "content": draw(st.none() | texts) if calls else draw(texts)}
        if calls:
            reply["tool_calls"] = calls
        msgs.append(reply)
        msgs += [{"role": "tool", "tool_call_id": c["id"], "content": draw(texts)} for c in calls]
    return msgs


def flat_openai(msgs: list[JSON]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in msgs:
        content = m.get("content")
        parts = (
            [content]
            if isinstance(content, str)
            else [p["text"] for p in content or () if p["type"] == "text"]
        )
        if m["role"] == "tool":
            out.append(("result", m["tool_call_id"], "".join(parts)))
            continue
        out += [(m["role"], p) for p in parts]
        out += [
            ("call", c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for c in m.get("tool_calls") or ()
        ]
    return out


@SETTINGS
@given(openai_conversations())
def test_openai_request_round_trip(msgs: list[JSON]) -> None:
    anthropic_req = to_anthropic({"messages": msgs}, "m", stream=False)
    back = to_openai_request(anthropic_req)
    assert flat_openai(back["messages"]) == flat_openai(msgs)


@st.composite
def anthropic_conversations(draw: st.DrawFn) -> list[JSON]:
    msgs: list[JSON] = []
    pending: list[str] = []
    n = 0
    for _ in range(draw(st.integers(1, 4))):
        user: list[JSON] = [
            {"type": "tool_result", "tool_use_id": i, "content": draw(texts)} for i in pending
        ]
        user += [
            {"type": "text", "text": t}
            for t in draw(st.lists(texts, min_size=0 if pending else 1, max_size=2))
        ]
        msgs.append({"role": "user", "content": user if pending or draw(st.booleans()) else user[0]["text"]})
        blocks: list[JSON] = [{"type": "text", "text": t} for t in draw(st.lists(texts, max_size=2))]
        pending = []
        for _ in range(draw(st.integers(0 if blocks else 1, 3))):
            n += 1
            pending.append(f"toolu_{n}")
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{n}", "name": draw(names), "input": draw(arguments)}
            )
        msgs.append({"role": "assistant", "content": blocks})
    return msgs


def flat_anthropic(msgs: list[JSON]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in msgs:
        blocks = [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str) else m["content"]
        for b in blocks:
            if b["type"] == "text":
                out.append((m["role"], b["text"]))
            elif b["type"] == "tool_use":
                out.append(("call", b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                c = b["content"]
                out.append(
                    ("result", b["tool_use_id"], c if isinstance(c, str) else "".join(x["text"] for x in c))
                )
    return out


@SETTINGS
@given(anthropic_conversations())
def test_anthropic_request_round_trip(msgs: list[JSON]) -> None:
    openai_req = to_openai_request({"model": "m", "max_tokens": 100, "messages": msgs})
    back = to_anthropic(openai_req, "m", stream=False)
    assert flat_anthropic(back["messages"]) == flat_anthropic(msgs)


# ---- responses ----------------------------------------------------------------------------------


@st.composite
def openai_responses(draw: st.DrawFn) -> JSON:
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()},
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    message: JSON = {"role": "assistant", "content": draw(st.none() | texts)}
    if draw(st.booleans()):
        message["reasoning_content"] = draw(texts)
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length"]))
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


@st.composite
def anthropic_messages(draw: st.DrawFn) -> JSON:
    content: list[JSON] = []
    if draw(st.booleans()):
        content.append({"type": "thinking", "thinking": draw(texts), "signature": "sig"})
    content += [{"type": "text", "text": t} for t in draw(st.lists(texts, max_size=2))]
    content += [
        {"type": "tool_use", "id": f"toolu_{i}", "name": draw(names), "input": draw(arguments)}
        for i in range(draw(st.integers(0, 3)))
    ]
    tools = any(b["type"] == "tool_use" for b in content)
    reason = "tool_use" if tools else draw(st.sampled_from(["end_turn", "max_tokens", "stop_sequence"]))
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": {"input_tokens": draw(st.integers(0, 9999)), "output_tokens": draw(st.integers(0, 9999))},
    }


def openai_essence(body: JSON) -> JSON:
    choice = body["choices"][0]
    msg = choice["message"]
    return {
        "content": msg.get("content") or "",
        "reasoning": msg.get("reasoning_content") or "",
        "calls": [
            (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for c in msg.get("tool_calls") or ()
        ],
        "finish": choice["finish_reason"],
    }


@SETTINGS
@given(openai_responses())
def test_openai_response_round_trip(body: JSON) -> None:
    back = to_chat_completion(to_anthropic_message(body, "msg_1"))
    assert openai_essence(back) == openai_essence(body)


def anthropic_essence(msg: JSON) -> JSON:
    blocks = msg["content"]
    return {
        "text": "".join(b["text"] for b in blocks if b["type"] == "text"),
        "thinking": "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
        "calls": [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
        "stop": msg["stop_reason"].replace("stop_sequence", "end_turn"),
    }


@SETTINGS
@given(anthropic_messages())
def test_anthropic_response_round_trip(msg: JSON) -> None:
    back = to_anthropic_message(to_chat_completion(msg), "msg_2")
    assert anthropic_essence(back) == anthropic_essence(msg)


# ---- streamed == non-streamed -----------------------------------------------------------------


def openai_chunks(data: st.DataObject, body: JSON) -> list[JSON]:
    """The chunk sequence an OpenAI-compatible upstream could stream for ``body``: content cut at random
    points, later tool calls' argument fragments interleaved with earlier ones, text and the first tool
    call sometimes sharing one chunk."""
    msg = body["choices"][0]["message"]
    deltas: list[JSON] = [{"role": "assistant", "content": ""}]
    if msg.get("reasoning_content"):
        deltas += [{"reasoning_content": p} for p in split(data, msg["reasoning_content"])]
    if msg.get("content"):
        deltas += [{"content": p} for p in split(data, msg["content"])]
    calls = msg.get("tool_calls") or []
    queues = []
    for i, c in enumerate(calls):
        pieces = split(data, c["function"]["arguments"])
        first = {
            "index": i,
            "id": c["id"],
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": pieces[0]},
        }
        queues.append([first, *({"index": i, "function": {"arguments": p}} for p in pieces[1:])])
    started = 0
    while any(queues):
        # the next call may only start after the previous one did (first appearance fixes the order)
        live = [i for i, q in enumerate(queues) if q and i <= started]
        i = data.draw(st.sampled_from(live))
        started = max(started, i + 1)
        deltas.append({"tool_calls": [queues[i].pop(0)]})
    if calls and msg.get("content") and data.draw(st.booleans()):
        k = next(j for j, d in enumerate(deltas) if "tool_calls" in d)
        deltas[k - 1] = {**deltas[k - 1], **deltas.pop(k)}  # one chunk: the last text piece and a tool call
    chunks = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": d, "finish_reason": None}],
        }
        for d in deltas
    ]
    chunks.append(
        {
            "id": "c",
            "choices": [{"index": 0, "delta": {}, "finish_reason": body["choices"][0]["finish_reason"]}],
        }
    )
    return chunks


@SETTINGS
@given(openai_responses(), st.data())
def test_event_stream_agrees_with_message(body: JSON, data: st.DataObject) -> None:
    enc = EventEncoder()
    events = [enc.start("msg_1", "gpt-x")]
    for c in openai_chunks(data, body):
        events += enc.feed(c)
    events += enc.finish({"input_tokens": 1, "output_tokens": 2})
    streamed = accumulate(events)  # also checks the sequence rules
    whole = to_anthropic_message(body, "msg_1")
    assert streamed["content"] == whole["content"]
    assert streamed["stop_reason"] == whole["stop_reason"]


def anthropic_events(data: st.DataObject, msg: JSON) -> list[SSEEvent]:
    start = {
        **msg,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": msg["usage"]["input_tokens"], "output_tokens": 1},
    }
    out = [("message_start", {"type": "message_start", "message": start})]
    for i, b in enumerate(msg["content"]):
        if b["type"] == "tool_use":
            first, pieces, key = (
                {**b, "input": {}},
                split(data, orjson.dumps(b["input"]).decode()),
                "input_json_delta",
            )
        elif b["type"] == "thinking":
            first, pieces, key = (
                {**b, "thinking": "", "signature": ""},
                split(data, b["thinking"]),
                "thinking_delta",
            )
        else:
            first, pieces, key = {**b, "text": ""}, split(data, b["text"]), "text_delta"
        out.append(
            ("content_block_start", {"type": "content_block_start", "index": i, "content_block": first})
        )
        if i == 0:
            out.append(("ping", {"type": "ping"}))
        field = {"input_json_delta": "partial_json", "thinking_delta": "thinking", "text_delta": "text"}[key]
        out += [
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": i, "delta": {"type": key, field: p}},
            )
            for p in pieces
        ]
        out.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": msg["usage"]["output_tokens"]},
            },
        )
    )
    out.append(("message_stop", {"type": "message_stop"}))
    return [SSEEvent(name, orjson.dumps(payload).decode()) for name, payload in out]


def accumulate_chunks(chunks: list[JSON]) -> JSON:
    content, reasoning, finish = "", "", None
    calls: dict[int, list[Any]] = {}
    for i, c in enumerate(chunks):
        choice = c["choices"][0]
        d = choice["delta"]
        assert ("role" in d) == (i == 0)  # the first chunk, and only it, carries the role
        content += d.get("content") or ""
        reasoning += d.get("reasoning_content") or ""
        for tc in d.get("tool_calls") or ():
            entry = calls.setdefault(tc["index"], [tc.get("id"), tc["function"].get("name"), ""])
            entry[2] += tc["function"].get("arguments") or ""
        finish = choice["finish_reason"] or finish
    return {
        "content": content,
        "reasoning": reasoning,
        "finish": finish,
        "calls": [(i, n, orjson.loads(a)) for i, n, a in (calls[k] for k in sorted(calls))],
    }


@SETTINGS
@given(anthropic_messages(), st.data())
def test_chunk_stream_agrees_with_completion(msg: JSON, data: st.DataObject) -> None:
    decoder = AnthropicChatDecoder("anthropic")
    chunks = [c for ev in anthropic_events(data, msg) for c in decoder.feed(ev)]
    assert decoder.done
    assert accumulate_chunks(chunks) == openai_essence(to_chat_completion(msg))
    whole = to_chat_completion(msg)
    assert whole["choices"][0]["message"]["content"] == (
        "".join(b["text"] for b in msg["content"] if b["type"] == "text")
        or (None if openai_essence(whole)["calls"] else "")
    )
    assert decoder.usage is not None
    assert (decoder.usage.input_tokens, decoder.usage.output_tokens) == (
        msg["usage"]["input_tokens"],
        msg["usage"]["output_tokens"],
    )
