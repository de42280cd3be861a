"""The Responses dialect's encoder: a non-streamed Response, or canonical chat chunks -> the Responses
event stream, as OpenAI sends it.

Event order (each with a ``sequence_number`` counting from 0)::

    response.created, response.in_progress                      (status in_progress, no output)
    per output item, in order of first appearance:
      response.output_item.added
      reasoning: content_part.added, reasoning_text.delta..., reasoning_text.done, content_part.done
      message:   content_part.added, output_text.delta..., output_text.done, content_part.done
                 (a refusal is its own part: refusal.delta..., refusal.done)
      function_call: function_call_arguments.delta..., function_call_arguments.done
      response.output_item.done
    response.completed  (or response.incomplete), carrying the whole Response with usage

Reasoning and message items close as soon as another item starts; function calls stay open until the
end, so parallel calls whose argument fragments interleave are still correct (each event names its
item). A failure mid-stream is an ``error`` event followed by ``response.failed``; then the stream ends.

When the upstream speaks Responses itself (``served.native``), its own Response and events pass
through: ids become perilune's response id, ``previous_response_id``/``store``/``metadata`` are the
client's, usage is perilune's (cost, timings); the final event is held until the usage is settled.

The encoder is pure (no I/O). It implements the gateway's ``Encoder`` protocol (body, start, item,
finish, error, text, capture); what it needs of the served attempt is :class:`ServedView`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from perilune._sse import encode_event
from perilune.accounting import estimate
from perilune.dialects.responses import from_hub as fh
from perilune.errors import PeriluneError, UpstreamRateLimited
from perilune.schema.canonical import JSON, Usage


class ServedView(Protocol):
    """What the encoder reads of the winning attempt (the gateway's ``Served`` has these and more)."""

    @property
    def model(self) -> str: ...

    @property
    def usage(self) -> Usage | None: ...


Extension = Callable[[Any], JSON]  # served -> perilune's usage additions (cost, timings, estimated ...)


@dataclass(slots=True)
class _Part:
    kind: str  # "output_text" | "refusal" | "reasoning_text"
    text: list[str] = field(default_factory=list)

    def json(self) -> JSON:
        joined = "".join(self.text)
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": joined}
        if self.kind == "reasoning_text":
            return {"type": "reasoning_text", "text": joined}
        return fh.text_part(joined)

    def empty(self) -> JSON:
        return {"type": "refusal", "refusal": ""} if self.kind == "refusal" else \
            {"type": self.kind, "text": ""} if self.kind == "reasoning_text" else fh.text_part("")


@dataclass(slots=True)
class _Item:
    kind: str  # "message" | "reasoning" | "function_call"
    id: str
    index: int
    parts: list[_Part] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    args: list[str] = field(default_factory=list)
    done: bool = False

    def json(self, status: str) -> JSON:
        if self.kind == "function_call":
            return fh.call_item(self.id, self.call_id, self.name, "".join(self.args), status)
        if self.kind == "reasoning":
            item = fh.reasoning_item(self.id, "", status)
            item["content"] = [p.json() for p in self.parts]
            return item
        return fh.message_item(self.id, [p.json() for p in self.parts], status)


class ResponsesEncoder:
    """One Responses answer, streamed or not."""

    media_type = "text/event-stream"
    body_type = "application/json"

    def __init__(self, raw: JSON, rid: str, *, extension: Extension, created_at: int | None = None,
                 on_final: Callable[[JSON], None] | None = None) -> None:
        self.raw = raw
        self.rid = rid
        self.created_at = int(time.time()) if created_at is None else created_at
        self.extension = extension
        self.on_final = on_final  # called with the finished Response before its bytes are returned
        self.seq = 0
        self.items: list[_Item] = []
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self.finish_reason: str | None = None
        self.final: JSON | None = None  # the finished (or failed) Response, for storage and capture
        self._held: JSON | None = None  # a native stream's final event, until usage is known

    # ---- native passthrough (the upstream speaks Responses) ---------------------------------------

    def _rewrite(self, response: JSON, served: Any, *, usage: bool) -> JSON:
        out = dict(response)
        out["id"] = self.rid
        out["previous_response_id"] = self.raw.get("previous_response_id")
        out["store"] = self.raw.get("store", True) is not False
        out["metadata"] = self.raw.get("metadata") or {}
        out["max_output_tokens"] = self.raw.get("max_output_tokens")  # not the limit perilune granted
        if usage:
            out["usage"] = fh.usage_json(served.usage or Usage(), self.extension(served))
            provider = getattr(served, "provider", None)
            if provider:
                out["provider"] = provider
        else:
            out.pop("usage", None)
        return out

    # ---- non-streamed ----------------------------------------------------------------------------

    def body(self, result: JSON, served: Any) -> bytes:
        if getattr(served, "native", False):
            self.final = self._rewrite(result, served, usage=True)
        else:
            self.final = fh.to_response(result, self.raw, self.rid, self.created_at, served.usage or Usage(),
                                        self.extension(served))
            provider = getattr(served, "provider", None)
            if provider:
                self.final["provider"] = provider
        self._finished(self.final)
        return orjson.dumps(self.final)

    def _finished(self, response: JSON) -> None:
        if self.on_final is not None:
            self.on_final(response)

    def headers(self, served: Any) -> dict[str, str]:
        return {}

    def passthrough(self, provider: str) -> bytes | None:
        return None  # every chunk becomes Responses events

    # ---- streamed --------------------------------------------------------------------------------

    def _event(self, payload: JSON) -> bytes:
        payload["sequence_number"] = self.seq
        self.seq += 1
        return encode_event(str(payload["type"]), orjson.dumps(payload))

    def _snapshot(self, served: Any, status: str) -> JSON:
        body = fh.envelope(self.raw, self.rid, self.created_at, str(served.model or self.raw.get("model")), status)
        body["output"] = [i.json("completed") for i in self.items if i.done]
        return body

    def start(self, served: Any) -> bytes:
        if getattr(served, "native", False):
            return b""  # the upstream sends its own response.created and response.in_progress
        snap = self._snapshot(served, "in_progress")
        return (self._event({"type": "response.created", "response": snap})
                + self._event({"type": "response.in_progress", "response": dict(snap)}))

    def _open(self, kind: str, out: list[bytes], **extra: str) -> _Item:
        prefix = {"message": "msg_", "reasoning": "rs_", "function_call": "fc_"}[kind]
        item = _Item(kind, fh.new_id(prefix), len(self.items), **extra)  # type: ignore[arg-type]
        self.items.append(item)
        out.append(self._event({"type": "response.output_item.added", "output_index": item.index,
                                "item": item.json("in_progress")}))
        return item

    def _add_part(self, item: _Item, kind: str, out: list[bytes]) -> _Part:
        part = _Part(kind)
        item.parts.append(part)
        out.append(self._event({"type": "response.content_part.added", "item_id": item.id,
                                "output_index": item.index, "content_index": len(item.parts) - 1,
                                "part": part.empty()}))
        return part

    def _close_part(self, item: _Item, j: int, out: list[bytes]) -> None:
        part = item.parts[j]
        where: JSON = {"item_id": item.id, "output_index": item.index, "content_index": j}
        joined = "".join(part.text)
        if part.kind == "output_text":
            out.append(self._event({"type": "response.output_text.done", **where, "text": joined, "logprobs": []}))
        elif part.kind == "refusal":
            out.append(self._event({"type": "response.refusal.done", **where, "refusal": joined}))
        else:
            out.append(self._event({"type": "response.reasoning_text.done", **where, "text": joined}))
        out.append(self._event({"type": "response.content_part.done", **where, "part": part.json()}))

    def _close(self, item: _Item | None, out: list[bytes], status: str = "completed") -> None:
        if item is None or item.done:
            return
        if item.kind == "function_call":
            out.append(self._event({"type": "response.function_call_arguments.done", "item_id": item.id,
                                    "output_index": item.index, "name": item.name,
                                    "arguments": "".join(item.args)}))
        else:
            for j in range(len(item.parts)):
                self._close_part(item, j, out)
        item.done = True
        out.append(self._event({"type": "response.output_item.done", "output_index": item.index,
                                "item": item.json(status)}))

    def _text(self, kind: str, delta: str, out: list[bytes]) -> None:
        """Reasoning text, output text or refusal text: opens (or continues) its item and part."""
        if kind == "reasoning_text":
            if self._reasoning is None or self._reasoning.done:
                self._close(self._message, out)
                self._reasoning = self._open("reasoning", out)
            item = self._reasoning
        else:
            self._close(self._reasoning, out)
            if self._message is None or self._message.done:
                self._message = self._open("message", out)
            item = self._message
        part = item.parts[-1] if item.parts else None
        if part is None or part.kind != kind:
            if part is not None:
                self._close_part(item, len(item.parts) - 1, out)
            part = self._add_part(item, kind, out)
        part.text.append(delta)
        where: JSON = {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts) - 1}
        if kind == "output_text":
            out.append(self._event({"type": "response.output_text.delta", **where, "delta": delta, "logprobs": []}))
        elif kind == "refusal":
            out.append(self._event({"type": "response.refusal.delta", **where, "delta": delta}))
        else:
            out.append(self._event({"type": "response.reasoning_text.delta", **where, "delta": delta}))

    def _tool(self, call: JSON, out: list[bytes]) -> None:
        fn = call.get("function") or {}
        key = call.get("index")
        if not isinstance(key, int):
            key = len(self._calls) if call.get("id") else max(self._calls, default=0)
        item = self._calls.get(key)
        if item is None:
            self._close(self._reasoning, out)
            self._close(self._message, out)
            item = self._open("function_call", out, call_id=str(call.get("id") or fh.new_id("call_")),
                              name=str(fn.get("name") or ""))
            self._calls[key] = item
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            item.args.append(args)
            out.append(self._event({"type": "response.function_call_arguments.delta", "item_id": item.id,
                                    "output_index": item.index, "delta": args}))

    def _native_item(self, ev: JSON, served: Any) -> bytes:
        seq = ev.get("sequence_number")
        self.seq = seq + 1 if isinstance(seq, int) else self.seq + 1
        if isinstance(ev.get("response"), dict):
            ev["response"] = self._rewrite(ev["response"], served, usage=False)
        if ev.get("type") in ("response.completed", "response.incomplete"):
            self._held = ev
            return b""
        return encode_event(str(ev.get("type")), orjson.dumps(ev))

    def item(self, item: JSON, served: Any) -> bytes:
        if getattr(served, "native", False):
            return self._native_item(item, served)
        out: list[bytes] = []
        for choice in item.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self._text("reasoning_text", reasoning, out)
            if isinstance(delta.get("content"), str) and delta["content"]:
                self._text("output_text", delta["content"], out)
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                self._text("refusal", delta["refusal"], out)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._tool(call, out)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return b"".join(out)

    def finish(self, served: Any) -> bytes:
        if getattr(served, "native", False) and self._held is not None:
            held = self._held
            held["response"] = self._rewrite(held["response"], served, usage=True)
            self.final = held["response"]
            self._finished(self.final)
            return encode_event(str(held["type"]), orjson.dumps(held))
        out: list[bytes] = []
        status, incomplete = fh.finish_status(self.finish_reason)
        for item in self.items:
            self._close(item, out, "completed" if status == "completed" else status)
        snap = self._snapshot(served, status)
        snap["output"] = [i.json("completed" if status == "completed" else status) for i in self.items]
        snap["incomplete_details"] = incomplete
        snap["completed_at"] = int(time.time()) if status == "completed" else None
        snap["usage"] = fh.usage_json(served.usage or Usage(), self.extension(served))
        provider = getattr(served, "provider", None)
        if provider:
            snap["provider"] = provider
        self.final = snap
        self._finished(snap)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event({"type": kind, "response": snap}))
        return b"".join(out)

    def error(self, e: PeriluneError, served: Any) -> bytes:
        code = "rate_limit_exceeded" if isinstance(e, UpstreamRateLimited) or e.status_code == 429 else "server_error"
        out = [self._event({"type": "error", "code": e.code or code, "message": e.message, "param": e.param})]
        snap = self._snapshot(served, "failed")
        snap["output"] = [i.json("completed" if i.done else "incomplete") for i in self.items]
        snap["error"] = {"code": code, "message": e.message}
        if served.usage is not None:
            snap["usage"] = fh.usage_json(served.usage, self.extension(served))
        self.final = snap
        out.append(self._event({"type": "response.failed", "response": snap}))
        return b"".join(out)

    def text(self, item: JSON) -> str:
        if str(item.get("type", "")).startswith("response."):  # a native event
            delta = item.get("delta")
            return delta if isinstance(delta, str) else ""
        return estimate.chunk_output_text(item)

    def capture(self) -> None:
        """No chunk assembler: the encoder keeps the Response the client got (``final``), which the
        handler hands to the usage record as the observability payload."""
        return None
