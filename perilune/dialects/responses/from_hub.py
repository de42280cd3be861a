"""A canonical chat completion -> a Response object (``Response`` in OpenAI's OpenAPI spec).

The request's own settings are echoed as the Responses API does (``tools``, ``tool_choice``,
``temperature``, ``text``, ``metadata`` ...), with the spec's defaults where the client gave none.
Output items: a ``reasoning`` item (when the upstream returned reasoning text), one assistant
``message`` (output_text and refusal parts), then one ``function_call`` item per tool call.
A ``length`` finish makes the response ``incomplete`` (reason ``max_output_tokens``), a content filter
``incomplete`` (reason ``content_filter``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from perilune.schema.canonical import JSON, Usage


def new_id(prefix: str) -> str:
    return prefix + os.urandom(16).hex()


def response_id(request_id: str) -> str:
    """The Response id of a request: its request id's unique part, so logs and records line up."""
    return "resp_" + request_id.removeprefix("req_")


def _tools_echo(tools: Any) -> list[JSON]:
    out: list[JSON] = []
    for t in tools or ():
        if isinstance(t, dict) and t.get("type") == "function":
            out.append({"type": "function", "name": t.get("name"), "description": t.get("description"),
                        "parameters": t.get("parameters"), "strict": t.get("strict")})
        elif isinstance(t, dict):
            out.append(t)
    return out


def envelope(raw: JSON, rid: str, created_at: int, model: str, status: str = "in_progress") -> JSON:
    """The Response as it starts: the request's settings echoed, no output, no usage yet (``usage`` is
    absent rather than null: the spec types it as an object)."""
    reasoning: JSON = raw["reasoning"] if isinstance(raw.get("reasoning"), dict) else {}
    text: JSON = raw["text"] if isinstance(raw.get("text"), dict) else {}
    body: JSON = {
        "id": rid, "object": "response", "created_at": created_at, "status": status, "completed_at": None,
        "error": None, "incomplete_details": None, "instructions": raw.get("instructions"),
        "max_output_tokens": raw.get("max_output_tokens"), "model": model, "output": [],
        "parallel_tool_calls": raw.get("parallel_tool_calls", True) is not False,
        "previous_response_id": raw.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": raw.get("store", True) is not False,
        "temperature": raw.get("temperature", 1.0), "top_p": raw.get("top_p", 1.0),
        "text": {**text, "format": text.get("format") or {"type": "text"}},
        "tool_choice": raw.get("tool_choice") or "auto", "tools": _tools_echo(raw.get("tools")),
        "truncation": raw.get("truncation") or "disabled",
        "metadata": raw.get("metadata") or {},
    }
    for name in ("user", "safety_identifier", "prompt_cache_key", "service_tier"):
        if isinstance(raw.get(name), str):
            body[name] = raw[name]
    return body


def usage_json(u: Usage, extension: JSON | None = None) -> JSON:
    """Responses usage (input includes cached tokens; output includes reasoning) plus perilune's
    additions (cost, timings, ``estimated``)."""
    out: JSON = {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }
    if extension:
        out.update(extension)
    return out


def text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[JSON], status: str) -> JSON:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def reasoning_item(item_id: str, text: str, status: str) -> JSON:
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}]}


def finish_status(finish: Any) -> tuple[str, JSON | None]:
    """A chat finish_reason -> the Response's status and incomplete_details."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def output_items(message: JSON, status: str) -> list[JSON]:
    items: list[JSON] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        items.append(reasoning_item(new_id("rs_"), reasoning, "completed"))
    parts: list[JSON] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(text_part(content))
    elif isinstance(content, list):
        parts.extend(text_part(str(p["text"])) for p in content
                     if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"])
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        items.append(message_item(new_id("msg_"), parts, status))
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        fn = call.get("function") or {}
        items.append(call_item(new_id("fc_"), str(call.get("id") or new_id("call_")), str(fn.get("name") or ""),
                               str(fn.get("arguments") or ""), "completed"))
    return items


def to_response(body: JSON, raw: JSON, rid: str, created_at: int, usage: Usage,
                extension: JSON | None = None) -> JSON:
    """A chat.completion (first choice) -> a finished Response."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    status, incomplete = finish_status(choice.get("finish_reason"))
    out = envelope(raw, rid, created_at, str(body.get("model") or raw.get("model")), status)
    out["output"] = output_items(choice.get("message") or {}, "completed" if status == "completed" else status)
    out["incomplete_details"] = incomplete
    out["completed_at"] = int(time.time()) if status == "completed" else None
    out["usage"] = usage_json(usage, extension)
    return out


def output_text(response: JSON) -> str:
    """The text of a Response's message items (what SDKs call ``output_text``)."""
    return "".join(str(p.get("text") or "") for item in response.get("output") or ()
                   if isinstance(item, dict) and item.get("type") == "message"
                   for p in item.get("content") or () if isinstance(p, dict) and p.get("type") == "output_text")
