"""A stored request and response, in any dialect, as one transcript for the Log detail page.

OpenAI chat and legacy completions, embeddings and images, and Anthropic Messages (system prompt,
text, images, documents, tool use and results, thinking) all become :class:`Turn` lists of typed
:class:`Part`\\ s, so the template has one way to draw them. Payloads are whatever was stored (they
can be truncated or odd): nothing here assumes a field exists or has a type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_TEXT = 20_000  # characters of one part shown; the raw JSON below holds everything


@dataclass(slots=True)
class Part:
    kind: str  # text, thinking, image, document, tool_call, tool_result, note, refusal, error
    text: str = ""
    name: str = ""  # tool name, or a document's title
    ref: str = ""  # a tool call's id (tool_call, tool_result)
    src: str = ""  # an image: a data: URL to show inline, or the URL it came from
    failed: bool = False  # a tool result marked as an error


@dataclass(slots=True)
class Turn:
    role: str  # system, user, assistant, tool, prompt, input, or "choice N" for an answer
    parts: list[Part] = field(default_factory=list)
    note: str = ""  # e.g. a finish reason


def _s(v: Any) -> str:
    if v is None:
        return ""
    text = v if isinstance(v, str) else orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _image(url: str) -> Part:
    inline = url.startswith("data:image/")
    return Part("image", src=url if inline else "", text="" if inline else url[:300])


# ---- OpenAI ----------------------------------------------------------------------------------------

def _openai_parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Part("text", _s(content))] if content else []
    out: list[Part] = []
    for part in content if isinstance(content, list) else [content]:
        if not isinstance(part, dict):
            out.append(Part("text", _s(part)))
            continue
        kind = part.get("type")
        if isinstance(part.get("text"), str):
            out.append(Part("text", _s(part["text"])))
        elif kind == "image_url":
            img = part.get("image_url")
            out.append(_image(str(_d(img).get("url", "") if isinstance(img, dict) else img or "")))
        elif kind == "input_audio":
            fmt = _d(part.get("input_audio")).get("format", "")
            out.append(Part("note", f"audio input {fmt}".strip()))
        elif kind == "file":
            f = _d(part.get("file"))
            out.append(Part("document", name=str(f.get("filename") or "file")))
        else:
            out.append(Part("note", str(kind or "part")))
    return out


def _openai_calls(calls: Any) -> list[Part]:
    out = []
    for c in calls if isinstance(calls, list) else ():
        if not isinstance(c, dict):
            continue
        fn = _d(c.get("function"))
        out.append(Part("tool_call", _s(fn.get("arguments", "")), name=str(fn.get("name", "")),
                        ref=str(c.get("id") or "")))
    return out


def _openai_message(m: dict[str, Any]) -> Turn:
    role = str(m.get("role", "?"))
    parts: list[Part] = []
    reasoning = m.get("reasoning_content") or m.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Part("thinking", _s(reasoning)))
    if role == "tool":
        parts.append(Part("tool_result", "\n".join(p.text for p in _openai_parts(m.get("content"))),
                          ref=str(m.get("tool_call_id") or "")))
    else:
        parts += _openai_parts(m.get("content"))
    if isinstance(m.get("refusal"), str) and m["refusal"]:
        parts.append(Part("refusal", _s(m["refusal"])))
    parts += _openai_calls(m.get("tool_calls"))
    return Turn(role, parts)


# ---- Anthropic -------------------------------------------------------------------------------------

def _anthropic_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part("text", _s(content))] if content else []
    out: list[Part] = []
    for b in content if isinstance(content, list) else ():
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            out.append(Part("text", _s(b.get("text"))))
        elif kind == "thinking":
            out.append(Part("thinking", _s(b.get("thinking"))))
        elif kind == "redacted_thinking":
            out.append(Part("thinking", "(redacted by the provider)"))
        elif kind in ("image", "document"):
            src = _d(b.get("source"))
            if kind == "image" and src.get("type") == "base64":
                out.append(_image(f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"))
            elif kind == "image":
                out.append(_image(str(src.get("url") or src.get("file_id") or "image")))
            else:
                out.append(Part("document", _s(src.get("data")) if src.get("type") == "text" else "",
                                name=str(b.get("title") or src.get("media_type") or "document")))
        elif kind in ("tool_use", "server_tool_use"):
            out.append(Part("tool_call", _s(b.get("input", {})), name=str(b.get("name", "")),
                            ref=str(b.get("id") or "")))
        elif kind == "tool_result":
            inner = b.get("content")
            text = "\n".join(p.text or p.src or p.name for p in _anthropic_parts(inner)) if isinstance(
                inner, list) else _s(inner)
            out.append(Part("tool_result", text, ref=str(b.get("tool_use_id") or ""), failed=b.get("is_error") is True))
        else:
            out.append(Part("note", str(kind or "block")))
    return out


def _system(system: Any) -> Turn | None:
    parts = _anthropic_parts(system)
    return Turn("system", parts) if parts else None


# ---- the two halves ----------------------------------------------------------------------------------

def conversation(req: Any) -> list[Turn]:
    """The request: its messages (either dialect, with an Anthropic ``system`` first), or its prompt
    or input."""
    if not isinstance(req, dict):
        return []
    anthropic = "system" in req or _looks_anthropic(req.get("messages"))
    out: list[Turn] = []
    if anthropic and (system := _system(req.get("system"))) is not None:
        out.append(system)
    if isinstance(req.get("messages"), list):
        for m in req["messages"]:
            if not isinstance(m, dict):
                continue
            if anthropic:
                out.append(Turn(str(m.get("role", "?")), _anthropic_parts(m.get("content"))))
            else:
                out.append(_openai_message(m))
        return out
    if isinstance(req.get("instructions"), str) and req["instructions"]:  # the Responses API
        out.append(Turn("system", [Part("text", _s(req["instructions"]))]))
    if isinstance(req.get("input"), list) and any(isinstance(i, dict) for i in req["input"]):
        return out + _responses_items(req["input"])
    for key in ("prompt", "input"):
        if key in req:
            v = req[key]
            out.append(Turn(key, [Part("text", _s(v))]))
    return out


def _looks_anthropic(messages: Any) -> bool:
    """Anthropic content blocks carry types OpenAI parts never do."""
    for m in messages if isinstance(messages, list) else ():
        content = m.get("content") if isinstance(m, dict) else None
        for b in content if isinstance(content, list) else ():
            if isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result", "thinking", "image",
                                                         "document", "redacted_thinking"):
                return True
    return False


def response_output(resp: Any) -> list[Turn]:
    """What the model answered: per choice (OpenAI), the message (Anthropic), images, an embeddings
    summary, or the error."""
    if not isinstance(resp, dict):
        return [Turn("response", [Part("text", _s(resp))])] if resp else []
    out: list[Turn] = []
    for c in resp.get("choices") or ():
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("message"), dict):
            turn = _openai_message(c["message"])
        else:
            turn = Turn("", [Part("text", _s(c.get("text")))] if c.get("text") else [])
        turn.role, turn.note = f"choice {c.get('index', 0)}", str(c.get("finish_reason") or "")
        out.append(turn)
    if resp.get("type") == "message" or (isinstance(resp.get("content"), list) and resp.get("role") == "assistant"):
        out.append(Turn("assistant", _anthropic_parts(resp.get("content")), note=str(resp.get("stop_reason") or "")))
    if resp.get("object") == "response" and isinstance(resp.get("output"), list):
        out += _responses_items(resp["output"])
    data = resp.get("data")
    if isinstance(data, list) and resp.get("object") == "list":
        dims = [len(d["embedding"]) for d in data if isinstance(d, dict) and isinstance(d.get("embedding"), list)]
        out.append(Turn("embeddings", [Part("text", f"{len(data)} embedding(s)"
                                            + (f" of {dims[0]} dimensions" if dims else ""))]))
    elif isinstance(data, list):  # images
        parts = []
        for d in data:
            if not isinstance(d, dict):
                continue
            if d.get("b64_json"):
                parts.append(_image(f"data:image/png;base64,{d['b64_json']}"))
            elif d.get("url"):
                parts.append(_image(str(d["url"])))
            if d.get("revised_prompt"):
                parts.append(Part("note", "revised prompt: " + str(d["revised_prompt"])))
        out.append(Turn("images", parts))
    if isinstance(resp.get("text"), str) and not out:  # a transcription
        out.append(Turn("transcript", [Part("text", _s(resp["text"]))]))
    err = resp.get("error")
    if isinstance(err, dict):
        out.append(Turn("error", [Part("error", _s(err.get("message") or err.get("type") or err))]))
    return out


def _responses_items(items: list[Any]) -> list[Turn]:
    """Responses API items: messages (input_text / output_text / input_image parts), function calls
    and their outputs, reasoning summaries."""
    out: list[Turn] = []
    for it in items:
        if not isinstance(it, dict):
            continue
        kind = it.get("type", "message")
        if kind == "message":
            parts = []
            content = it.get("content")
            for c in content if isinstance(content, list) else [content]:
                if isinstance(c, str):
                    parts.append(Part("text", _s(c)))
                elif isinstance(c, dict) and isinstance(c.get("text"), str):
                    parts.append(Part("refusal" if c.get("type") == "refusal" else "text", _s(c["text"])))
                elif isinstance(c, dict) and c.get("type") == "input_image":
                    parts.append(_image(str(c.get("image_url") or c.get("file_id") or "image")))
                elif isinstance(c, dict) and isinstance(c.get("refusal"), str):
                    parts.append(Part("refusal", _s(c["refusal"])))
            out.append(Turn(str(it.get("role", "assistant")), parts))
        elif kind == "function_call":
            out.append(Turn("assistant", [Part("tool_call", _s(it.get("arguments", "")), name=str(it.get("name", "")),
                                               ref=str(it.get("call_id") or ""))]))
        elif kind == "function_call_output":
            out.append(Turn("tool", [Part("tool_result", _s(it.get("output")), ref=str(it.get("call_id") or ""))]))
        elif kind == "reasoning":
            summary = it.get("summary")
            text = "\n".join(str(x.get("text", "")) for x in summary if isinstance(x, dict)) if isinstance(
                summary, list) else ""
            out.append(Turn("assistant", [Part("thinking", _s(text or "(reasoning not shown by the provider)"))]))
        else:
            out.append(Turn(str(kind), [Part("note", str(kind))]))
    return out
