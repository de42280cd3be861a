"""The native Gemini adapter (``generativelanguage.googleapis.com``, API ``v1beta``).

OpenAI-shaped chat requests become ``models/{model}:generateContent`` (or
``:streamGenerateContent?alt=sse``) bodies; embeddings become ``:batchEmbedContents``. Answers come back
through :mod:`perilune.providers.gemini_response` as OpenAI-shaped mappings with canonical usage, so
the model is reachable from every client dialect. Wire formats follow ai.google.dev's API reference
(GenerateContentRequest, Content/Part, Tool/FunctionDeclaration, ToolConfig, GenerationConfig,
ThinkingConfig, Schema, BatchEmbedContentsRequest) and its thought-signature guide.

Translation choices:

* system and developer messages (wherever they appear) join ``systemInstruction``; tool messages that
  follow each other form one ``user`` turn of ``functionResponse`` parts, their function names recovered
  from the assistant tool call with the same id.
* Gemini 3 requires the ``thoughtSignature`` of a function call to come back with it. Signatures travel to
  clients as ``tool_calls[].extra_content.google.thought_signature`` (Google's own OpenAI-compatibility
  convention) and are restored from there; when a client dropped it, the documented
  ``skip_thought_signature_validator`` sentinel is sent instead for Gemini 3+ models.
* ``reasoning_effort`` becomes ``thinkingBudget`` for Gemini 1.x/2.x models (none/low/medium/high ->
  0/1024/8192/24576, Google's own OpenAI mapping) and ``thinkingLevel`` for later ones; thoughts are
  asked for (``includeThoughts``) and come back as ``reasoning_content``.
* JSON schemas (tool parameters, ``response_format``) are reduced to the OpenAPI subset Gemini accepts:
  ``$ref`` inlined, ``["t", "null"]`` types -> ``nullable``, ``const`` -> ``enum``, unknown keys
  (``additionalProperties``, ``$schema``, ``strict``, ...) dropped.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from perilune._http import status_error
from perilune.errors import InvalidRequest, Unsupported, UpstreamError
from perilune.providers.base import CHAT, EMBEDDINGS, Provider, Result, UpstreamRequest
from perilune.providers.gemini_response import GeminiStreamDecoder, error_info, parse_chat, parse_embeddings
from perilune.schema.canonical import JSON

API_VERSION = "v1beta"
SIGNATURE_SENTINEL = "skip_thought_signature_validator"
_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "high"}
_VERSION = re.compile(r"^(?:models/)?gemini-(\d+)")
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[^;,]*)*?);base64,(.*)$", re.DOTALL)
_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})
_FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}, "integer": {"int32", "int64"}}
_GENERATION = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
               ("seed", "seed"), ("presence_penalty", "presencePenalty"),
               ("frequency_penalty", "frequencyPenalty"))


def _major(model: str) -> int | None:
    m = _VERSION.match(model)
    return int(m.group(1)) if m else None


# ---- JSON schema -> Gemini Schema ----------------------------------------------------------------

def gemini_schema(schema: Any, defs: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A JSON schema reduced to the OpenAPI 3.0 subset Gemini's ``Schema`` accepts."""
    if not isinstance(schema, dict):
        return schema
    if depth > 32:
        raise Unsupported("The JSON schema is nested too deeply (or is recursive) for Gemini.", param="tools")
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name not in defs:
            raise Unsupported(f"The JSON schema reference {ref!r} cannot be resolved for Gemini.",
                              param="tools")
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return gemini_schema(merged, defs, depth + 1)
    src = dict(schema)
    for key in ("oneOf", "anyOf"):
        if key in src:
            src["anyOf"] = src.pop(key)
    all_of = src.pop("allOf", None)
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        src = {**all_of[0], **src}
    if "const" in src and "enum" not in src:
        src["enum"] = [src["const"]]
    out: dict[str, Any] = {}
    t = src.get("type")
    if isinstance(t, list):
        kinds = [k for k in t if k != "null"]
        if len(kinds) < len(t):
            out["nullable"] = True
        if len(kinds) == 1:
            t = kinds[0]
        else:
            src["anyOf"] = [{"type": k} for k in kinds]
            t = None
    if isinstance(t, str):
        out["type"] = t
    for key, value in src.items():
        if key not in _SCHEMA_KEYS or key in ("type", "nullable"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: gemini_schema(v, defs, depth + 1) for k, v in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value, defs, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            options = [gemini_schema(v, defs, depth + 1) for v in value]
            if any(o == {"type": "null"} for o in options):
                out["nullable"] = True
                options = [o for o in options if o != {"type": "null"}]
            if len(options) == 1 and "type" not in out:
                out.update(options[0])
            elif options:
                out[key] = options
        elif key == "enum" and isinstance(value, list):
            out[key] = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value if v is not None]
        elif key == "format":
            if isinstance(t, str) and value in _FORMATS.get(t, ()):
                out[key] = value
        else:
            out[key] = value
    if src.get("nullable") is True:
        out["nullable"] = True
    return out


# ---- messages -> contents -------------------------------------------------------------------------

def _text_of(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "refusal":
                texts.append(str(part.get("refusal", "")))
            else:
                raise InvalidRequest(f"Only text parts are allowed in '{param}'.", param=param)
        return "".join(texts)
    raise InvalidRequest(f"Invalid value for '{param}'.", param=param)


def _data_url(url: str, param: str) -> dict[str, Any]:
    m = _DATA_URL.match(url)
    if not m or not m.group(1):
        raise Unsupported("Gemini needs data: URLs in the form data:<mime type>;base64,<data>.", param=param)
    return {"inlineData": {"mimeType": m.group(1), "data": m.group(3)}}


def _media_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "image_url":
        url = str((part.get("image_url") or {}).get("url", ""))
        if url.startswith("data:"):
            return _data_url(url, param)
        if url.startswith(("http://", "https://", "gs://")):
            mime = mimetypes.guess_type(urlsplit(url).path)[0]
            if mime is None:
                raise Unsupported("Gemini needs the media type of an image URL and none can be told from "
                                  f"{url[:100]!r}; send the image as a data: URL instead.", param=param)
            return {"fileData": {"mimeType": mime, "fileUri": url}}
        raise Unsupported("Image URLs for Gemini must be data:, http(s):// or gs:// URLs.", param=param)
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = str(audio.get("format", "wav"))
        mime = {"mp3": "audio/mpeg", "wav": "audio/wav"}.get(fmt, f"audio/{fmt}")
        return {"inlineData": {"mimeType": mime, "data": str(audio.get("data", ""))}}
    if kind == "file":
        file = part.get("file") or {}
        data = file.get("file_data")
        if isinstance(data, str) and data.startswith("data:"):
            return _data_url(data, param)
        raise Unsupported("Gemini takes files as file_data data: URLs; file ids are OpenAI's own.",
                          param=param)
    raise InvalidRequest(f"Unknown content part type {kind!r}.", param=param)


def _user_parts(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content or ()):
        if not isinstance(part, dict):
            raise InvalidRequest("Content parts must be objects.", param=f"{param}[{j}]")
        if part.get("type") == "text":
            parts.append({"text": str(part.get("text", ""))})
        else:
            parts.append(_media_part(part, f"{param}[{j}]"))
    return parts


def _json_args(raw: Any, param: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        args = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("Tool call arguments must be a JSON object string.", param=param) from None
    if not isinstance(args, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=param)
    return args


def _signature(call: dict[str, Any]) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    sig = google.get("thought_signature") if isinstance(google, dict) else None
    return sig if isinstance(sig, str) and sig else None


def _response_value(content: Any, param: str) -> dict[str, Any]:
    text = _text_of(content, param)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def build_contents(messages: list[Any], model: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction, contents) for OpenAI chat messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name
    sentinel = (_major(model) or 0) >= 3
    for i, m in enumerate(messages):
        param = f"messages[{i}]"
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.append({"text": _text_of(content, f"{param}.content")})
        elif role == "user":
            contents.append({"role": "user", "parts": _user_parts(content, f"{param}.content")})
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            text = _text_of(content, f"{param}.content")
            if text:
                parts.append({"text": text})
            calls = list(m.get("tool_calls") or ())
            if m.get("function_call"):
                calls.append({"id": "", "function": m["function_call"]})
            for j, call in enumerate(calls):
                fn = call.get("function") or {}
                name = str(fn.get("name", ""))
                if call.get("id"):
                    names[str(call["id"])] = name
                args = _json_args(fn.get("arguments"), f"{param}.tool_calls[{j}].function.arguments")
                part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
                sig = _signature(call) or (SIGNATURE_SENTINEL if sentinel and j == 0 else None)
                if sig:
                    part["thoughtSignature"] = sig
                parts.append(part)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            if role == "tool":
                call_id = str(m.get("tool_call_id", ""))
                name = names.get(call_id, "")
                if not name:
                    raise InvalidRequest(f"No earlier assistant tool call has the id {call_id!r}; Gemini "
                                         "needs the function name of every tool result.",
                                         param=f"{param}.tool_call_id")
            else:
                name = str(m.get("name", ""))
            value = _response_value(content, f"{param}.content")
            part = {"functionResponse": {"name": name, "response": value}}
            last = contents[-1] if contents else None
            if last and last["role"] == "user" and all("functionResponse" in p for p in last["parts"]):
                last["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            raise InvalidRequest(f"Unknown message role {role!r}.", param=f"{param}.role")
    if not contents:
        raise InvalidRequest("Gemini needs at least one user or assistant message besides system messages.",
                             param="messages")
    return ({"parts": system} if system else None), contents


# ---- the request ----------------------------------------------------------------------------------

def _tools(req: JSON) -> list[dict[str, Any]] | None:
    decls = []
    for t in req.get("tools") or ():
        fn = t.get("function") or {}
        decl: dict[str, Any] = {"name": fn.get("name")}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = gemini_schema(fn.get("parameters")) if fn.get("parameters") else None
        if params and (params.get("type") != "object" or params.get("properties")):
            decl["parameters"] = params
        decls.append(decl)
    return [{"functionDeclarations": decls}] if decls else None


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"none": "NONE", "auto": "AUTO", "required": "ANY"}.get(choice)
        if mode is None:
            raise InvalidRequest(f"Invalid value for 'tool_choice': {choice!r}.", param="tool_choice")
        return {"functionCallingConfig": {"mode": mode}}
    name = (choice.get("function") or {}).get("name")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _thinking(effort: Any, model: str) -> dict[str, Any]:
    key = str(effort).lower()
    if key not in _BUDGETS:
        raise InvalidRequest(f"Invalid value for 'reasoning_effort': {effort!r}; use none, minimal, low, "
                             "medium or high.", param="reasoning_effort")
    major = _major(model)
    cfg: dict[str, Any] = ({"thinkingBudget": _BUDGETS[key]} if major is not None and major < 3
                           else {"thinkingLevel": _LEVELS[key]})
    if key != "none":
        cfg["includeThoughts"] = True
    return cfg


def generation_config(req: JSON, model: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for ours, theirs in _GENERATION:
        if req.get(ours) is not None:
            cfg[theirs] = req[ours]
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    if limit is not None:
        cfg["maxOutputTokens"] = limit
    stop = req.get("stop")
    if stop:
        cfg["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if req.get("logprobs"):
        cfg["responseLogprobs"] = True
        if req.get("top_logprobs"):
            cfg["logprobs"] = req["top_logprobs"]
    fmt = req.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        cfg["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if fmt["type"] == "json_schema" and isinstance(schema, dict):
            cfg["responseSchema"] = gemini_schema(schema)
    if req.get("reasoning_effort") is not None:
        cfg["thinkingConfig"] = _thinking(req["reasoning_effort"], model)
    return cfg


def chat_body(req: JSON, model: str) -> dict[str, Any]:
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages")
    system, contents = build_contents(messages, model)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = system
    tools = _tools(req)
    if tools:
        body["tools"] = tools
        config = _tool_config(req.get("tool_choice"))
        if config:
            body["toolConfig"] = config
    gen = generation_config(req, model)
    if gen:
        body["generationConfig"] = gen
    return body


def embed_body(req: JSON, model: str) -> dict[str, Any]:
    raw = req.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Unsupported("Gemini embeds text only: 'input' must be a string or a list of strings "
                          "(not token ids).", param="input")
    one: dict[str, Any] = {"model": f"models/{model}"}
    if req.get("dimensions"):
        one["outputDimensionality"] = req["dimensions"]
    return {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in texts]}


class GeminiAdapter:
    supports = frozenset({CHAT, EMBEDDINGS})

    def build(self, op: str, provider: Provider, model: str, req: JSON, *, stream: bool) -> UpstreamRequest:
        model = model.removeprefix("models/")
        base = provider.base_url.rstrip("/")
        if not base.endswith(("/v1beta", "/v1")):
            base += "/" + API_VERSION
        url = f"{base}/models/{quote(model, safe='-._~')}"
        if op == CHAT:
            body = chat_body(req, model)
            url += ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        elif op == EMBEDDINGS:
            body, stream = embed_body(req, model), False
            url += ":batchEmbedContents"
        else:
            raise Unsupported(f"The Gemini adapter does not serve {op}.")
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else
                   "application/json"}
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key
        if provider.headers:
            headers.update(provider.headers)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body), stream=stream)

    def parse(self, op: str, body: bytes, content_type: str) -> Result:
        return parse_embeddings(body) if op == EMBEDDINGS else parse_chat(body)

    def stream_decoder(self, op: str, name: str = "gemini") -> GeminiStreamDecoder:
        return GeminiStreamDecoder(name)

    def error(self, name: str, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
        message, reason, retry = error_info(body)
        if reason == "API_KEY_INVALID":
            status = 401  # Gemini answers 400 to a bad key: it is perilune's credential, not the request
        return status_error(name, status, message, headers.get("Retry-After") or retry)
