"""OpenAI-shaped chat request -> Anthropic Messages request (pure translation, used by the adapter).

What maps, and how:

- system/developer messages (anywhere) -> top-level ``system`` text blocks, in order;
- user/assistant messages -> content blocks; consecutive same-role turns (tool results included) merge
  into one turn, tool results first, as Anthropic requires;
- ``tool_calls`` -> ``tool_use`` blocks (arguments parsed to an object); ``tool`` messages ->
  ``tool_result`` blocks; ``image_url`` parts -> image blocks (data: URL -> base64 source, http(s) ->
  url source); PDF ``file`` parts with ``file_data`` -> document blocks;
- ``stop`` -> ``stop_sequences``; ``max_completion_tokens``/``max_tokens`` -> ``max_tokens`` (required by
  Anthropic: :data:`DEFAULT_MAX_TOKENS` when absent, raised above the thinking budget when needed);
- ``tools``/``tool_choice``/``parallel_tool_calls`` -> Anthropic tools and tool_choice;
- ``reasoning_effort`` -> ``thinking`` budget; a ``thinking`` object is passed through as-is;
- ``response_format`` json_schema -> ``output_config.format`` (structured outputs); json_object has no
  Anthropic equivalent and is a 400 ``Unsupported``, as are ``n`` > 1, logprobs, logit_bias, non-zero
  penalties and audio: a request is never silently served without a feature it asked for.

Dropped on purpose: ``reasoning_content`` of earlier assistant turns (Anthropic rejects thinking blocks
without their signature), ``seed`` (best-effort in OpenAI's own API), ``stream_options`` (Anthropic always
reports usage), OpenAI's stored-completion ``metadata``/``store``.
"""

from __future__ import annotations

from typing import Any

import orjson

from perilune.errors import InvalidRequest, Unsupported
from perilune.schema.canonical import JSON

DEFAULT_MAX_TOKENS = 4096
# reasoning_effort -> thinking.budget_tokens (Anthropic's minimum budget is 1024)
THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
PASSTHROUGH = ("top_k", "thinking", "service_tier")  # Anthropic-native fields a client may add


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise InvalidRequest(f"Invalid value for '{param}': expected a string or a list of text parts.",
                         param=param)


def image_block(url: str, param: str) -> JSON:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type, _, encoding = header[5:].partition(";")
        if encoding != "base64" or not data or not media_type:
            raise InvalidRequest(f"Invalid value for '{param}': a data URL must be base64 "
                                 "(data:<media type>;base64,<data>).", param=param)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"Invalid value for '{param}': expected an http(s) or data: URL.", param=param)


def _part(part: Any, param: str) -> JSON | None:
    if not isinstance(part, dict):
        raise InvalidRequest(f"Invalid value for '{param}': expected a content part object.", param=param)
    typ = part.get("type")
    block: JSON
    if typ == "text":
        text = str(part.get("text", ""))
        if not text:
            return None  # Anthropic rejects empty text blocks
        block = {"type": "text", "text": text}
    elif typ == "refusal":
        text = str(part.get("refusal", ""))
        if not text:
            return None
        block = {"type": "text", "text": text}
    elif typ == "image_url":
        image = part.get("image_url") or {}
        block = image_block(str(image.get("url", "")), f"{param}.image_url.url")
    elif typ == "file":
        block = _document(part.get("file") or {}, f"{param}.file")
    else:
        raise Unsupported(f"Content parts of type '{typ}' cannot be sent to an Anthropic model.", param=param)
    if isinstance(part.get("cache_control"), dict):  # OpenRouter's convention for prompt caching
        block["cache_control"] = part["cache_control"]
    return block


def _document(file: JSON, param: str) -> JSON:
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise Unsupported("Only inline files (file_data as a base64 data: URL) can be sent to an Anthropic "
                          "model; uploaded file ids cannot.", param=param)
    header, _, payload = data.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if encoding != "base64" or media_type != "application/pdf":
        raise Unsupported(f"Anthropic models accept PDF documents only (got {media_type or 'unknown'}).",
                          param=param)
    source = {"type": "base64", "media_type": media_type, "data": payload}
    block: JSON = {"type": "document", "source": source}
    if file.get("filename"):
        block["title"] = str(file["filename"])
    return block


def _content(content: Any, param: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid value for '{param}': expected a string or a list of parts.",
                             param=param)
    out = []
    for i, part in enumerate(content):
        block = _part(part, f"{param}[{i}]")
        if block is not None:
            out.append(block)
    return out


def _tool_use(call: Any, param: str) -> JSON:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not fn.get("name"):
        raise InvalidRequest(f"Invalid value for '{param}': a tool call needs function.name.", param=param)
    args = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(args) if isinstance(args, str) else args
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"Invalid value for '{param}.function.arguments': Anthropic models need tool "
                             "arguments that are a JSON object.", param=f"{param}.function.arguments")
    return {"type": "tool_use", "id": str(call.get("id") or ""), "name": str(fn["name"]), "input": parsed}


def _messages(messages: list[Any]) -> tuple[list[JSON], list[JSON]]:
    """(system blocks, Anthropic messages)."""
    system: list[JSON] = []
    out: list[JSON] = []

    def add(role: str, blocks: list[JSON]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            prev = out[-1]["content"]
            if role == "user" and any(b["type"] == "tool_result" for b in blocks):
                # tool results go first in the user turn that answers the tool calls
                results = [b for b in prev if b["type"] == "tool_result"]
                others = [b for b in prev if b["type"] != "tool_result"]
                prev[:] = [*results, *blocks, *others]
            else:
                prev.extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for i, m in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequest(f"Invalid value for '{param}': expected a message object.", param=param)
        role = m.get("role")
        if role in ("system", "developer"):
            content = m.get("content")
            if isinstance(content, list):  # parts keep their cache_control
                system += [b for b in _content(content, f"{param}.content") if b["type"] == "text"]
            elif text := _text_of(content, f"{param}.content"):
                system.append({"type": "text", "text": text})
        elif role == "user":
            add("user", _content(m.get("content"), f"{param}.content"))
        elif role == "assistant":
            blocks = _content(m.get("content"), f"{param}.content")
            if m.get("function_call"):
                raise Unsupported("Legacy function_call messages cannot be sent to an Anthropic model; use "
                                  "tool_calls.", param=f"{param}.function_call")
            calls = m.get("tool_calls") or ()
            blocks += [_tool_use(c, f"{param}.tool_calls[{j}]") for j, c in enumerate(calls)]
            add("assistant", blocks)
        elif role == "tool":
            content = m.get("content")
            result: JSON = {"type": "tool_result", "tool_use_id": str(m.get("tool_call_id") or "")}
            if isinstance(content, list):
                result["content"] = _content(content, f"{param}.content")
            else:
                result["content"] = _text_of(content, f"{param}.content")
            add("user", [result])
        elif role == "function":
            raise Unsupported("Legacy function messages cannot be sent to an Anthropic model; use tool "
                              "messages.", param=f"{param}.role")
        else:
            raise InvalidRequest(f"Invalid value for '{param}.role': {role!r}.", param=f"{param}.role")
    return system, out


def _tools(tools: list[Any]) -> list[JSON]:
    out = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise InvalidRequest(f"Invalid value for 'tools[{i}]': expected a function tool.",
                                 param=f"tools[{i}]")
        tool: JSON = {"name": fn["name"]}
        if fn.get("description"):
            tool["description"] = fn["description"]
        tool["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        if fn.get("strict"):
            tool["strict"] = True
        if isinstance(t.get("cache_control"), dict):
            tool["cache_control"] = t["cache_control"]
        out.append(tool)
    return out


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    tc: JSON | None
    if choice is None:
        tc = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        tc = {"type": "auto"}
    elif choice == "required":
        tc = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        tc = {"type": "tool", "name": str(choice["function"].get("name", ""))}
    else:
        raise InvalidRequest(f"Invalid value for 'tool_choice': {choice!r}.", param="tool_choice")
    if tc is not None and parallel is False:
        tc["disable_parallel_tool_use"] = True
    return tc


def _reject_unsupported(req: JSON) -> None:
    if (req.get("n") or 1) > 1:
        raise Unsupported("Anthropic models return one choice per request; 'n' must be 1.", param="n")
    if req.get("logprobs") or req.get("top_logprobs"):
        raise Unsupported("Anthropic models do not return logprobs.", param="logprobs")
    if req.get("logit_bias"):
        raise Unsupported("Anthropic models do not support logit_bias.", param="logit_bias")
    for name in ("frequency_penalty", "presence_penalty"):
        if req.get(name):
            raise Unsupported(f"Anthropic models do not support {name}.", param=name)
    if req.get("audio") or "audio" in (req.get("modalities") or ()):
        raise Unsupported("Anthropic models do not produce audio.", param="modalities")
    temperature = req.get("temperature")
    if isinstance(temperature, (int, float)) and temperature > 1:
        raise Unsupported("Anthropic models accept a temperature between 0 and 1.", param="temperature")


def _response_format(fmt: Any) -> JSON | None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema is required.",
                                 param="response_format.json_schema.schema")
        return {"type": "json_schema", "schema": schema}
    raise Unsupported("Anthropic models have no JSON mode without a schema; use response_format "
                      "{'type': 'json_schema', ...} (served as Anthropic structured outputs).",
                      param="response_format")


def to_anthropic(req: JSON, model: str, *, stream: bool) -> JSON:
    """Translate a validated OpenAI chat request into an Anthropic Messages request body."""
    _reject_unsupported(req)
    system, messages = _messages(req.get("messages") or [])
    body: JSON = {"model": model}
    max_tokens = req.get("max_completion_tokens") or req.get("max_tokens")
    body["max_tokens"] = int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 and len(system[0]) == 2 else system
    body["messages"] = messages
    stop = req.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("temperature", "top_p"):
        if req.get(name) is not None:
            body[name] = req[name]
    tools = req.get("tools")
    if tools:
        body["tools"] = _tools(tools)
        choice = _tool_choice(req.get("tool_choice"), req.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if req.get("user"):
        body["metadata"] = {"user_id": str(req["user"])}
    fmt = _response_format(req.get("response_format"))
    if fmt is not None:
        body["output_config"] = {"format": fmt}
    for name in PASSTHROUGH:
        if req.get(name) is not None:
            body[name] = req[name]
    effort = req.get("reasoning_effort")
    if effort is not None and "thinking" not in body:
        if effort not in THINKING_BUDGETS:
            raise InvalidRequest(f"Invalid value for 'reasoning_effort': {effort!r}; expected one of "
                                 f"{', '.join(THINKING_BUDGETS)}.", param="reasoning_effort")
        budget = THINKING_BUDGETS[effort]
        if budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if not max_tokens:
                body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
            elif int(max_tokens) <= budget:
                if int(max_tokens) <= 1024:
                    raise Unsupported("Extended thinking on Anthropic models needs max_tokens above 1024.",
                                      param="max_completion_tokens")
                body["thinking"]["budget_tokens"] = int(max_tokens) - 1
    if stream:
        body["stream"] = True
    return body
