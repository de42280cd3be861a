"""Dialect conversion for perilune's Anthropic dialect in front of non-Anthropic upstreams.

- :func:`to_openai_request`: an Anthropic Messages request -> the OpenAI-shaped chat request the
  pipeline speaks (the lingua franca);
- :func:`to_anthropic_message`: an OpenAI-shaped chat.completion -> an Anthropic message;
- :class:`EventEncoder`: OpenAI-shaped chat.completion.chunk mappings -> the exact Anthropic event
  sequence (message_start, content_block_start, ping, content_block_delta..., content_block_stop,
  message_delta, message_stop).

The reverse directions (OpenAI-dialect clients in front of Anthropic upstreams) live in the adapter,
:mod:`perilune.providers.anthropic`. When the upstream is Anthropic-typed, none of this runs: the request
passes through natively (see :class:`perilune.gateway.pipeline.Native`).

Not carried to OpenAI-shaped upstreams, on purpose (dropping them cannot change what the answer says):
``cache_control`` (OpenAI-compatible hosts cache on their own), thinking blocks of earlier turns (their
signatures mean nothing elsewhere), ``is_error`` of tool results (no OpenAI equivalent; the result text
is kept), ``context_management`` (server-side clearing of old thinking and tool results to save context:
without it the full history is sent, which only costs tokens), ``thinking.display``, ``service_tier`` and
any other field this module does not translate. Mid-conversation ``system`` messages join the leading
system message, in order. ``output_config.effort`` ``max``/``xhigh`` become ``high``. Content only
Anthropic can serve (PDFs by URL or file id, server-tool blocks, images inside tool results,
``mcp_servers``, ``container``) is a 400 ``Unsupported``: dropping it would change the answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from perilune.errors import Unsupported, UpstreamUnavailable
from perilune.schema.canonical import JSON

Event = tuple[str, JSON]  # (SSE event name, payload)

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
               "function_call": "tool_use", "content_filter": "refusal"}
# thinking.budget_tokens -> reasoning_effort (the adapter's THINKING_BUDGETS, read the other way)
EFFORTS = ((4096, "low"), (16384, "medium"))
EFFORT_NAMES = ("low", "medium", "high")  # output_config.effort values OpenAI's reasoning_effort shares
EFFORT_ALIASES = {"max": "high", "xhigh": "high", "minimal": "low"}


# ---- requests ---------------------------------------------------------------------------------

def _native_only(what: str, param: str) -> Unsupported:
    return Unsupported(f"{what} can only be sent to an Anthropic provider; this model's provider speaks the "
                       "OpenAI dialect.", param=param)


def _data_url(source: JSON) -> str:
    return f"data:{source['media_type']};base64,{source['data']}"


def _image_part(source: JSON, param: str) -> JSON:
    stype = source.get("type")
    if stype == "base64":
        return {"type": "image_url", "image_url": {"url": _data_url(source)}}
    if stype == "url":
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _native_only(f"An image with a '{stype}' source", param)


def _document_parts(block: JSON, param: str) -> list[JSON]:
    source = block.get("source") or {}
    stype = source.get("type")
    if stype == "base64":
        name = block.get("title") or "document.pdf"
        return [{"type": "file", "file": {"filename": name, "file_data": _data_url(source)}}]
    if stype == "text":
        return [{"type": "text", "text": str(source.get("data", ""))}]
    if stype == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        return _parts(inner or [], f"{param}.source.content")
    raise _native_only(f"A document with a '{stype}' source", param)


def _parts(blocks: list[Any], param: str) -> list[JSON]:
    """User-side content blocks (no tool results) -> OpenAI content parts."""
    out: list[JSON] = []
    for j, b in enumerate(blocks):
        out.extend(_one(b, f"{param}[{j}]"))
    return out


def _one(block: JSON, param: str) -> list[JSON]:
    typ = block.get("type")
    if typ == "text":
        return [{"type": "text", "text": str(block.get("text", ""))}]
    if typ == "image":
        return [_image_part(block.get("source") or {}, param)]
    if typ == "document":
        return _document_parts(block, param)
    if typ in ("thinking", "redacted_thinking"):
        return []
    raise _native_only(f"A '{typ}' content block", param)


def _content(parts: list[JSON]) -> str | list[JSON]:
    """A single text part collapses to a plain string (what every OpenAI-compatible host accepts)."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_message(block: JSON, param: str) -> JSON:
    content = block.get("content")
    if content is None or isinstance(content, str):
        text: str | list[JSON] = content or ""
    else:
        parts = _parts(content, f"{param}.content")
        if any(p["type"] != "text" for p in parts):
            raise _native_only("An image or document inside a tool_result", f"{param}.content")
        text = _content(parts) if parts else ""
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _user(content: Any, param: str) -> list[JSON]:
    """One Anthropic user turn -> tool messages (its tool results, first) and a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[JSON] = []
    parts: list[JSON] = []
    for j, b in enumerate(content):
        if b.get("type") == "tool_result":
            out.append(_tool_message(b, f"{param}[{j}]"))
        else:
            parts.extend(_one(b, f"{param}[{j}]"))
    if parts:
        out.append({"role": "user", "content": _content(parts)})
    return out


def _assistant(content: Any, param: str) -> JSON:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[JSON] = []
    calls: list[JSON] = []
    for j, b in enumerate(content):
        typ = b.get("type")
        if typ == "text":
            texts.append({"type": "text", "text": b["text"]})
        elif typ == "tool_use":
            args = orjson.dumps(b.get("input", {})).decode()
            fn = {"name": b["name"], "arguments": args}
            calls.append({"id": b["id"], "type": "function", "function": fn})
        elif typ in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _native_only(f"A '{typ}' content block", f"{param}[{j}]")
    msg: JSON = {"role": "assistant", "content": _content(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _effort(thinking: Any) -> str | None:
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "adaptive":
        return "medium"
    if thinking.get("type") != "enabled":
        return None
    budget = int(thinking.get("budget_tokens") or 0)
    return next((name for limit, name in EFFORTS if budget < limit), "high")


def _system_text(system: Any) -> list[str]:
    """The texts of a system prompt (a string or text blocks; ``cache_control`` has no meaning elsewhere)."""
    if isinstance(system, str):
        return [system] if system else []
    if isinstance(system, list):
        return [str(b.get("text") or "") for b in system if isinstance(b, dict) and b.get("text")]
    return []


def to_openai_request(req: JSON) -> JSON:
    """A validated Anthropic Messages request -> an OpenAI-shaped chat request."""
    messages: list[JSON] = []
    system = _system_text(req.get("system"))
    for i, m in enumerate(req["messages"]):
        param = f"messages[{i}].content"
        if m["role"] == "user":
            messages.extend(_user(m["content"], param))
        elif m["role"] == "system":  # mid-conversation system text joins the system prompt, in order
            system.extend(_system_text(m["content"]))
        else:
            messages.append(_assistant(m["content"], param))
    if system:
        messages.insert(0, {"role": "system", "content": _content([{"type": "text", "text": t} for t in system])})
    out: JSON = {"model": req["model"], "messages": messages, "max_tokens": req["max_tokens"]}
    if req.get("stop_sequences"):
        out["stop"] = list(req["stop_sequences"])
    for name in ("temperature", "top_p", "top_k"):
        if req.get(name) is not None:
            out[name] = req[name]
    tools = req.get("tools")
    if tools:
        out["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice = req.get("tool_choice")
    if isinstance(choice, dict) and tools:  # OpenAI rejects a tool_choice without tools
        ctype = choice.get("type")
        if ctype == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[str(ctype)]
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    user = (req.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    config = req.get("output_config") or {}
    wanted = EFFORT_ALIASES.get(str(config.get("effort")), config.get("effort"))
    effort = _effort(req.get("thinking")) or (wanted if wanted in EFFORT_NAMES else None)
    if effort:
        out["reasoning_effort"] = effort
    fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": "output", "schema": fmt.get("schema"), "strict": True}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    for name in ("mcp_servers", "container"):
        if req.get(name):
            raise _native_only(f"'{name}'", name)
    return out


def _tool(t: JSON, param: str) -> JSON:
    if t.get("type") not in (None, "custom"):
        raise _native_only(f"The server tool '{t.get('type')}'", param)
    fn: JSON = {"name": t["name"]}
    if t.get("description"):
        fn["description"] = t["description"]
    fn["parameters"] = t.get("input_schema") or {"type": "object", "properties": {}}
    if t.get("strict"):
        fn["strict"] = True
    return {"type": "function", "function": fn}


# ---- responses --------------------------------------------------------------------------------

def _tool_input(arguments: Any) -> JSON:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamUnavailable(f"upstream returned tool-call arguments that are not a JSON object: "
                                  f"{str(arguments)[:120]!r}", code="upstream_malformed")
    return parsed


def stop_reason(finish: str | None, has_tools: bool) -> str:
    reason = STOP_REASON.get(str(finish), "end_turn")
    return "tool_use" if has_tools and reason == "end_turn" else reason


def to_anthropic_message(body: JSON, msg_id: str) -> JSON:
    """An OpenAI-shaped chat.completion -> an Anthropic message (``usage`` is added by the relay)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[JSON] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    elif isinstance(text, list):
        for part in text:
            if isinstance(part, dict) and part.get("type") in ("text", "output_text") and part.get("text"):
                content.append({"type": "text", "text": str(part["text"])})
    if isinstance(msg.get("refusal"), str) and msg["refusal"]:
        content.append({"type": "text", "text": msg["refusal"]})
    calls = msg.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or new_tool_id(), "name": fn.get("name"),
                        "input": _tool_input(fn.get("arguments"))})
    return {"id": msg_id, "type": "message", "role": "assistant", "model": body.get("model"),
            "content": content, "stop_reason": stop_reason(choice.get("finish_reason"), bool(calls)),
            "stop_sequence": None}


def new_tool_id() -> str:
    return "toolu_" + os.urandom(12).hex()


# ---- streams ----------------------------------------------------------------------------------

@dataclass(slots=True)
class _Block:
    kind: str  # "text" | "thinking" | "tool_use"
    pending: list[str] = field(default_factory=list)  # content not yet sent
    args: list[str] = field(default_factory=list)  # every tool-argument fragment, for completeness checks
    id: str = ""
    name: str = ""
    index: int = -1  # Anthropic block index, once started
    complete: bool = False

    def start(self) -> JSON:
        if self.kind == "tool_use":
            return {"type": "tool_use", "id": self.id, "name": self.name, "input": {}}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        return {"type": "text", "text": ""}

    def delta(self, text: str) -> JSON:
        if self.kind == "tool_use":
            return {"type": "input_json_delta", "partial_json": text}
        if self.kind == "thinking":
            return {"type": "thinking_delta", "thinking": text}
        return {"type": "text_delta", "text": text}


class EventEncoder:
    """OpenAI-shaped chunks -> Anthropic events, blocks strictly one after another.

    Blocks open in order of first appearance. The block at the head of the queue streams live; content
    for later blocks waits until every block before it is complete: text and thinking once something
    follows them, a tool call once its arguments parse as JSON (so parallel tool calls whose argument
    fragments arrive interleaved still come out as whole, sequential blocks), everything at the end.
    """

    __slots__ = ("_next", "_pinged", "_queue", "_tools", "finish_reason", "has_tools")

    def __init__(self) -> None:
        self._queue: list[_Block] = []
        self._tools: dict[int, _Block] = {}  # OpenAI tool_calls index -> block
        self._next = 0
        self._pinged = False
        self.finish_reason: str | None = None
        self.has_tools = False

    @staticmethod
    def start(msg_id: str, model: str, extra: JSON | None = None, *, input_tokens: int | None = None,
              estimated: bool = True) -> Event:
        """``message_start``. Its ``usage.input_tokens`` is the prompt's token count, as Anthropic's own
        message_start carries it: the upstream's exact count when it is known before the first delta
        (``estimated=False``), else perilune's local estimate, flagged ``"estimated": true``. The final
        counts follow in message_delta."""
        usage: JSON = {"input_tokens": input_tokens or 0, "cache_creation_input_tokens": 0,
                       "cache_read_input_tokens": 0, "output_tokens": 0}
        if estimated and input_tokens is not None:
            usage["estimated"] = True
        message: JSON = {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
                         "stop_reason": None, "stop_sequence": None, "usage": usage}
        if extra:
            message.update(extra)
        return "message_start", {"type": "message_start", "message": message}

    def feed(self, chunk: JSON) -> list[Event]:
        out: list[Event] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self._text("thinking", reasoning, out)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._text("text", content, out)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._tool(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self._advance(out)
        return out

    def finish(self, usage: JSON) -> list[Event]:
        """Close every block, then message_delta (stop_reason, ``usage``) and message_stop."""
        out: list[Event] = []
        for b in self._queue:
            b.complete = True
        self._advance(out)
        reason = stop_reason(self.finish_reason, self.has_tools)
        delta = {"stop_reason": reason, "stop_sequence": None}
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _live(self, b: _Block) -> bool:
        return b.index >= 0 and bool(self._queue) and self._queue[0] is b

    def _emit(self, b: _Block, text: str, out: list[Event]) -> None:
        out.append(("content_block_delta",
                    {"type": "content_block_delta", "index": b.index, "delta": b.delta(text)}))

    def _text(self, kind: str, text: str, out: list[Event]) -> None:
        tail = self._queue[-1] if self._queue else None
        if tail is None or tail.kind != kind:
            tail = _Block(kind)
            self._mark_followed()
            self._queue.append(tail)
        if self._live(tail):
            self._emit(tail, text, out)
        else:
            tail.pending.append(text)

    def _mark_followed(self) -> None:
        """Text and thinking blocks are complete as soon as another block follows them."""
        for b in self._queue:
            if b.kind != "tool_use":
                b.complete = True

    def _tool(self, call: JSON, out: list[Event]) -> None:
        fn = call.get("function") or {}
        key = call.get("index")
        if not isinstance(key, int):
            key = len(self._tools) if call.get("id") else max(self._tools, default=0)
        b = self._tools.get(key)
        if b is None:
            b = _Block("tool_use", id=str(call.get("id") or new_tool_id()), name=str(fn.get("name") or ""))
            self._tools[key] = b
            self._mark_followed()
            self._queue.append(b)
            self.has_tools = True
        elif fn.get("name") and b.index < 0:
            b.name += str(fn["name"])
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            b.args.append(args)
            if b.index >= 0:  # live (or, for a malformed interleaving, already closed): send now
                self._emit(b, args, out)
            else:
                b.pending.append(args)

    def _advance(self, out: list[Event]) -> None:
        while self._queue:
            head = self._queue[0]
            if head.index < 0:
                head.index = self._next
                self._next += 1
                out.append(("content_block_start", {"type": "content_block_start", "index": head.index,
                                                    "content_block": head.start()}))
                if not self._pinged:
                    out.append(("ping", {"type": "ping"}))
                    self._pinged = True
                if head.pending:
                    self._emit(head, "".join(head.pending), out)
                    head.pending.clear()
            if len(self._queue) > 1 and head.kind == "tool_use" and not head.complete:
                head.complete = _is_json("".join(head.args))
            if not head.complete:
                return
            out.append(("content_block_stop", {"type": "content_block_stop", "index": head.index}))
            self._queue.pop(0)


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True
