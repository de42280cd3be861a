"""Opt-in payload capture (``"observability": true`` in a request body).

Handlers mark the request's lifecycle (``observe``), which keeps a reference to the request mapping
and the response mapping, or the encoder's :class:`StreamCapture` that assembles a stream into one
response as it passes.
Nothing is serialised on the request path of a request that did not ask: the cost of the feature for
everyone else is one attribute test. Payloads are serialised when the usage event is recorded.
"""

from __future__ import annotations

from typing import Any

import orjson

from perilune.schema.canonical import JSON, UsageEvent


class _Choice:
    __slots__ = ("content", "finish_reason", "index", "reasoning", "refusal", "role", "text", "tool_calls")

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None


class StreamCapture:
    """Assembles OpenAI-shaped stream chunks into the response a non-streamed call would have given:
    per choice the content, reasoning, refusal, tool calls (id, name, joined arguments) and finish
    reason; legacy completions' ``text``."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.object = "chat.completion"
        self.model: str | None = None
        self.created: int | None = None
        self.choices: dict[int, _Choice] = {}

    def feed(self, chunk: JSON) -> None:
        if self.id is None:
            self.id, self.model, self.created = chunk.get("id"), chunk.get("model"), chunk.get("created")
            if chunk.get("object") == "text_completion":
                self.object = "text_completion"
        for c in chunk.get("choices") or ():
            if not isinstance(c, dict):
                continue
            i = c.get("index", 0) if isinstance(c.get("index", 0), int) else 0
            ch = self.choices.get(i)
            if ch is None:
                ch = self.choices[i] = _Choice(i)
            delta = c.get("delta")
            if isinstance(delta, dict):
                _feed_delta(ch, delta)
            elif isinstance(c.get("text"), str):
                ch.text.append(c["text"])
            if c.get("finish_reason"):
                ch.finish_reason = c["finish_reason"]

    def result(self) -> JSON:
        choices = []
        for i in sorted(self.choices):
            ch = self.choices[i]
            if self.object == "text_completion":
                choices.append({"index": i, "text": "".join(ch.text), "finish_reason": ch.finish_reason})
                continue
            msg: JSON = {"role": ch.role, "content": "".join(ch.content) if ch.content else None}
            if ch.reasoning:
                msg["reasoning_content"] = "".join(ch.reasoning)
            if ch.refusal:
                msg["refusal"] = "".join(ch.refusal)
            if ch.tool_calls:
                msg["tool_calls"] = [
                    {"id": tc["id"], "type": tc["type"],
                     "function": {"name": "".join(tc["name"]), "arguments": "".join(tc["arguments"])}}
                    for _, tc in sorted(ch.tool_calls.items())]
            choices.append({"index": i, "message": msg, "finish_reason": ch.finish_reason})
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "choices": choices, "streamed": True}


def _feed_delta(ch: _Choice, delta: JSON) -> None:
    if isinstance(delta.get("role"), str):
        ch.role = delta["role"]
    if isinstance(delta.get("content"), str):
        ch.content.append(delta["content"])
    for name in ("reasoning_content", "reasoning"):
        if isinstance(delta.get(name), str):
            ch.reasoning.append(delta[name])
    if isinstance(delta.get("refusal"), str):
        ch.refusal.append(delta["refusal"])
    for tc in delta.get("tool_calls") or ():
        if not isinstance(tc, dict):
            continue
        ti = tc.get("index", 0) if isinstance(tc.get("index", 0), int) else 0
        slot = ch.tool_calls.get(ti)
        if slot is None:
            slot = ch.tool_calls[ti] = {"id": None, "type": "function", "name": [], "arguments": []}
        if tc.get("id"):
            slot["id"] = tc["id"]
        if tc.get("type"):
            slot["type"] = tc["type"]
        fn = tc.get("function")
        if isinstance(fn, dict):
            if isinstance(fn.get("name"), str):
                slot["name"].append(fn["name"])
            if isinstance(fn.get("arguments"), str):
                slot["arguments"].append(fn["arguments"])


def _text(value: Any, max_bytes: int) -> str | None:
    if value is None:
        return None
    data = orjson.dumps(value, default=str)
    if len(data) <= max_bytes:
        return data.decode()
    preview = data[:max_bytes].decode(errors="ignore")
    return orjson.dumps({"truncated": True, "size_bytes": len(data), "preview": preview}).decode()


class MessageCapture:
    """Assembles an Anthropic event stream (native passthrough) into the message it describes."""

    def __init__(self) -> None:
        self.message: JSON = {"type": "message", "role": "assistant", "content": []}
        self._json: dict[int, list[str]] = {}

    def feed(self, ev: JSON) -> None:
        typ = ev.get("type")
        if typ == "message_start" and isinstance(ev.get("message"), dict):
            self.message = {**ev["message"], "content": []}
        elif typ == "content_block_start" and isinstance(ev.get("content_block"), dict):
            self.message["content"].append(dict(ev["content_block"]))
        elif typ == "content_block_delta" and self.message["content"]:
            index = int(ev.get("index") or 0)
            blocks = self.message["content"]
            block = blocks[min(index, len(blocks) - 1)]
            d = ev.get("delta") or {}
            if d.get("type") == "text_delta":
                block["text"] = str(block.get("text") or "") + str(d.get("text") or "")
            elif d.get("type") == "thinking_delta":
                block["thinking"] = str(block.get("thinking") or "") + str(d.get("thinking") or "")
            elif d.get("type") == "input_json_delta":
                self._json.setdefault(index, []).append(str(d.get("partial_json") or ""))
        elif typ == "message_delta":
            self.message.update({k: v for k, v in (ev.get("delta") or {}).items() if v is not None})
            if isinstance(ev.get("usage"), dict):
                self.message["usage"] = ev["usage"]

    def result(self) -> JSON:
        for index, parts in self._json.items():
            if index < len(self.message["content"]):
                text = "".join(parts)
                try:
                    self.message["content"][index]["input"] = orjson.loads(text) if text else {}
                except orjson.JSONDecodeError:
                    self.message["content"][index]["input"] = text
        return self.message


def payload_row(o: UsageEvent, max_bytes: int) -> dict[str, Any]:
    """The ``usage_payloads`` row of a captured request; each side capped at ``max_bytes``."""
    resp = o.payload_response
    if isinstance(resp, StreamCapture | MessageCapture):
        resp = resp.result()
    if o.error_type and not (isinstance(resp, dict) and "error" in resp):
        error = {"status": o.status, "type": o.error_type}
        resp = {**resp, "error": error} if isinstance(resp, dict) else {"error": error}
    return {"id": o.request_id, "created_at": o.started_wall, "request": _text(o.payload_request, max_bytes),
            "response": _text(resp, max_bytes)}
