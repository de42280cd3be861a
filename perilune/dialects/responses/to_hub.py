"""A Responses request -> the canonical (OpenAI chat-shaped) request every adapter speaks.

- ``input``: a string is one user message; items are messages (roles user, assistant, system,
  developer; developer becomes system, which every chat host accepts), ``function_call`` items
  (consecutive ones join one assistant turn's ``tool_calls``), ``function_call_output`` items (tool
  messages), images (``input_image`` by URL or data URL) and files (``input_file`` with ``file_data``);
- ``instructions`` -> a leading system message; a stored conversation (``previous_response_id``) is
  prepended as items, as the Responses API does (its instructions are not carried over);
- function ``tools`` and ``tool_choice`` (``allowed_tools`` narrows the tool list), ``max_output_tokens``
  -> ``max_completion_tokens``, ``temperature``/``top_p``, ``text.format`` json_schema ->
  ``response_format``, ``reasoning.effort`` -> ``reasoning_effort``, ``user``/``safety_identifier`` ->
  ``user``. ``metadata`` is the client's bookkeeping: echoed in the Response and stored with it, not
  sent to chat upstreams (several reject it).

Dropped on purpose (no chat equivalent, and dropping them cannot change the answer's content):
``reasoning`` items of earlier turns (their encrypted content means nothing to another host),
``include``, ``truncation``, ``store``, ``background``, ``service_tier``, ``text.verbosity``,
``reasoning.summary``, ``top_logprobs``, ``prompt_cache_key``, ``max_tool_calls``. Items and tools
only OpenAI can serve (built-in tools such as web_search,
``item_reference``, file ids) are a 400 ``Unsupported`` naming the param, unless an upstream that speaks
Responses natively serves the request.
"""

from __future__ import annotations

from typing import Any

from perilune.errors import InvalidRequest, Unsupported
from perilune.schema.canonical import JSON

SAMPLING = ("temperature", "top_p")
EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high",
           "none": "none"}


def _native_only(what: str, param: str) -> Unsupported:
    return Unsupported(f"{what} can only be sent to a provider that speaks the Responses API; this model's "
                       "provider does not.", param=param)


def _need_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"Invalid type for '{param}': expected a string.", param=param,
                             code="invalid_type")
    return value


def _part(p: Any, param: str) -> JSON:
    """One input content part -> a chat content part."""
    if not isinstance(p, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    typ = p.get("type")
    if typ in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _need_str(p.get("text"), f"{param}.text")}
    if typ == "refusal":
        return {"type": "text", "text": _need_str(p.get("refusal"), f"{param}.refusal")}
    if typ == "input_image":
        if p.get("image_url") is None:
            raise _native_only("An input_image by file_id", f"{param}.file_id")
        image: JSON = {"url": _need_str(p.get("image_url"), f"{param}.image_url")}
        if p.get("detail") in ("low", "high", "auto"):
            image["detail"] = p["detail"]
        return {"type": "image_url", "image_url": image}
    if typ == "input_file":
        if p.get("file_data") is not None:
            f: JSON = {"file_data": _need_str(p.get("file_data"), f"{param}.file_data")}
            if p.get("filename"):
                f["filename"] = str(p["filename"])
            return {"type": "file", "file": f}
        if p.get("file_id"):
            return {"type": "file", "file": {"file_id": _need_str(p["file_id"], f"{param}.file_id")}}
        raise _native_only("An input_file by URL", f"{param}.file_url")
    raise InvalidRequest(f"Invalid value for '{param}.type': {typ!r}; expected input_text, input_image, "
                         "input_file, output_text or refusal.", param=f"{param}.type", code="invalid_value")


def _content(content: Any, param: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{param}': expected a string or an array of content parts.",
                             param=param, code="invalid_type")
    parts = [_part(p, f"{param}[{j}]") for j, p in enumerate(content)]
    if parts and all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)
    return parts


def _message(item: JSON, param: str) -> JSON:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(f"Invalid value for '{param}.role': {role!r}; expected user, assistant, system or "
                             "developer.", param=f"{param}.role", code="invalid_value")
    if "content" not in item:
        raise InvalidRequest(f"Missing required parameter: '{param}.content'.", param=f"{param}.content",
                             code="missing_required_parameter")
    content = _content(item["content"], f"{param}.content")
    if role in ("system", "developer"):
        if isinstance(content, list):
            raise InvalidRequest(f"'{param}.content': a {role} message may hold only text.",
                                 param=f"{param}.content", code="invalid_value")
        return {"role": "system", "content": content}
    if role == "assistant" and isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content)
    return {"role": role, "content": content}


def _call(item: JSON, param: str) -> JSON:
    call_id = item.get("call_id")
    name = _need_str(item.get("name"), f"{param}.name")
    args = item.get("arguments", "")
    return {"id": _need_str(call_id, f"{param}.call_id"), "type": "function",
            "function": {"name": name, "arguments": _need_str(args, f"{param}.arguments")}}


def _call_output(item: JSON, param: str) -> JSON:
    output = item.get("output")
    if isinstance(output, list):
        parts = [_part(p, f"{param}.output[{j}]") for j, p in enumerate(output)]
        if any(p["type"] != "text" for p in parts):
            raise _native_only("An image or file inside a function_call_output", f"{param}.output")
        output = "".join(str(p["text"]) for p in parts)
    return {"role": "tool", "tool_call_id": _need_str(item.get("call_id"), f"{param}.call_id"),
            "content": _need_str(output, f"{param}.output")}


def items_to_messages(items: list[Any], param: str = "input") -> list[JSON]:
    """Input (or stored output) items -> chat messages, in order."""
    out: list[JSON] = []
    for i, item in enumerate(items):
        p = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid type for '{p}': expected an object.", param=p, code="invalid_type")
        typ = item.get("type")
        if typ is None and "role" in item:
            typ = "message"
        if typ == "message":
            out.append(_message(item, p))
        elif typ == "function_call":
            call = _call(item, p)
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and (last.get("tool_calls")
                                                                     or not last.get("content")
                                                                     or isinstance(last["content"], str)):
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif typ == "function_call_output":
            out.append(_call_output(item, p))
        elif typ == "reasoning":
            continue
        elif isinstance(typ, str):
            raise _native_only(f"An input item of type '{typ}'", f"{p}.type")
        else:
            raise InvalidRequest(f"Missing required parameter: '{p}.type'.", param=f"{p}.type",
                                 code="missing_required_parameter")
    return out


def input_items(raw: JSON) -> list[Any]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = raw.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value)


def _tools(tools: list[Any]) -> list[JSON]:
    out: list[JSON] = []
    for i, t in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(t, dict):
            raise InvalidRequest(f"Invalid type for '{p}': expected an object.", param=p, code="invalid_type")
        if t.get("type") != "function":
            raise _native_only(f"The built-in tool '{t.get('type')}'", f"{p}.type")
        fn: JSON = {"name": _need_str(t.get("name"), f"{p}.name")}
        if t.get("description"):
            fn["description"] = _need_str(t["description"], f"{p}.description")
        fn["parameters"] = t.get("parameters") or {"type": "object", "properties": {}}
        if t.get("strict") is not None:
            fn["strict"] = bool(t["strict"])
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, tools: list[JSON]) -> tuple[Any, list[JSON]]:
    """The chat tool_choice and the tool list it allows."""
    if choice is None or isinstance(choice, str):
        return choice, tools
    ctype = choice.get("type")
    if ctype == "function":
        name = _need_str(choice.get("name"), "tool_choice.name")
        return {"type": "function", "function": {"name": name}}, tools
    if ctype == "allowed_tools":
        allowed = {t.get("name") for t in choice.get("tools") or () if isinstance(t, dict)}
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise InvalidRequest("Invalid value for 'tool_choice.mode': expected auto or required.",
                                 param="tool_choice.mode", code="invalid_value")
        return mode, [t for t in tools if t["function"]["name"] in allowed]
    raise _native_only(f"A tool_choice of type '{ctype}'", "tool_choice.type")


def to_chat(raw: JSON, history: list[Any] | None = None) -> JSON:
    """A validated Responses request (``raw``) and the stored conversation before it -> a chat request."""
    messages: list[JSON] = []
    instructions = raw.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    if history:
        messages.extend(items_to_messages(history, "previous_response_id"))
    messages.extend(items_to_messages(input_items(raw)))
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    out: JSON = {"model": raw["model"], "messages": messages}
    if raw.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = raw["max_output_tokens"]
    for name in SAMPLING:
        if raw.get(name) is not None:
            out[name] = raw[name]
    tools = _tools(raw.get("tools") or [])
    choice, tools = _tool_choice(raw.get("tool_choice"), tools)
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
        if raw.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = raw["parallel_tool_calls"]
    elif choice == "required":
        raise InvalidRequest("tool_choice 'required' needs at least one tool.", param="tool_choice")
    fmt = (raw.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema: JSON = {"name": fmt["name"], "schema": fmt["schema"]}
        for k in ("description", "strict"):
            if fmt.get(k) is not None:
                schema[k] = fmt[k]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    effort = (raw.get("reasoning") or {}).get("effort")
    if effort in EFFORTS:
        out["reasoning_effort"] = EFFORTS[effort]
    user = raw.get("safety_identifier") or raw.get("user")
    if user:
        out["user"] = user
    return out
