"""Gemini personality: generateContent, streamGenerateContent?alt=sse,
embedContent, batchEmbedContents, countTokens, models list.

Request keys are accepted in camelCase and snake_case (as the REST API does).
SSE events are ``data: {GenerateContentResponse}`` terminated by CRLF CRLF, as
Google's endpoint emits them.  Errors: ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from perilune.tokens import count_tokens, split_tokens

from . import text as T
from . import vectors
from .common import (
    RETRY_AFTER_S,
    Request,
    Response,
    StreamPlan,
    dumps,
    group_pieces,
    json_response,
    new_id,
)

_TOOL_WORDS = re.compile(r"\b(?:weather|tools?)\b", re.IGNORECASE)
_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    529: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}
SSE = b"text/event-stream"
SEP = b"\r\n\r\n"


def error(status: int, message: str | None = None, details: list[Any] | None = None) -> Response:
    st, msg = _STATUS.get(status, ("UNKNOWN", "Unknown error."))
    err: dict[str, Any] = {"code": status, "message": message or msg, "status": st}
    headers = []
    if status == 429:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{RETRY_AFTER_S}s"}]
    if details:
        err["details"] = details
    return json_response(status, {"error": err}, headers)


def stream_error_frame() -> bytes:
    return (
        b"data: " + dumps({"error": {"code": 503, "message": _STATUS[503][1], "status": "UNAVAILABLE"}}) + SEP
    )


def check_auth(req: Request, key: str) -> Response | None:
    given = req.header(b"x-goog-api-key")
    if given is None and req.query:
        keys = parse_qs(req.query).get("key")
        given = keys[0] if keys else None
    if given is None:
        return error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if given != key:
        msg = "API key not valid. Please pass a valid API key."
        return error(
            400,
            msg,
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": msg,
                },
            ],
        )
    return None


def g(d: Any, camel: str, snake: str, default: Any = None) -> Any:
    if not isinstance(d, dict):
        return default
    v = d.get(camel)
    if v is None:
        v = d.get(snake)
    return default if v is None else v


# --------------------------------------------------------------------------- counting


def _parts_tokens(parts: Any) -> tuple[int, int, str, bool]:
    """(text tokens, media tokens, text, has functionResponse) of a parts list."""
    text_t = media_t = 0
    texts: list[str] = []
    has_resp = False
    for p in parts if isinstance(parts, list) else ():
        if not isinstance(p, dict):
            continue
        if "text" in p:
            text_t += count_tokens(str(p["text"]))
            texts.append(str(p["text"]))
        elif (fc := g(p, "functionCall", "function_call")) is not None:
            text_t += count_tokens(str(fc.get("name", ""))) + count_tokens(dumps(fc.get("args", {})).decode())
        elif (fr := g(p, "functionResponse", "function_response")) is not None:
            has_resp = True
            text_t += count_tokens(str(fr.get("name", ""))) + count_tokens(
                dumps(fr.get("response", {})).decode()
            )
        else:  # inlineData, fileData, ...
            media_t += T.IMAGE_TOKENS
    return text_t, media_t, "".join(texts), has_resp


def count_prompt(body: dict[str, Any]) -> tuple[int, int, str, bool]:
    """(text tokens, media tokens, last user text, last turn is a function response)."""
    text_t = media_t = 0
    last_user, has_resp = "", False
    system = g(body, "systemInstruction", "system_instruction")
    if system:
        t, m, _, _ = _parts_tokens(system.get("parts") if isinstance(system, dict) else None)
        text_t += T.PER_MESSAGE_TOKENS + t
        media_t += m
    for c in body.get("contents") or ():
        if not isinstance(c, dict):
            continue
        t, m, txt, resp = _parts_tokens(c.get("parts"))
        text_t += T.PER_MESSAGE_TOKENS + t
        media_t += m
        has_resp = resp
        if c.get("role", "user") == "user" and not resp:
            last_user = txt
    if body.get("tools"):
        text_t += count_tokens(dumps(body["tools"]).decode())
    return text_t, media_t, last_user, has_resp


def _details(text_t: int, media_t: int) -> list[dict[str, Any]]:
    out = [{"modality": "TEXT", "tokenCount": text_t}]
    if media_t:
        out.append({"modality": "IMAGE", "tokenCount": media_t})
    return out


# --------------------------------------------------------------------------- generate


def _pick_function(body: dict[str, Any], last_user: str, has_resp: bool) -> dict[str, Any] | None:
    decls: list[dict[str, Any]] = []
    for tool in body.get("tools") or ():
        decls.extend(
            d for d in g(tool, "functionDeclarations", "function_declarations", []) if isinstance(d, dict)
        )
    if not decls:
        return None
    cfg = g(g(body, "toolConfig", "tool_config", {}), "functionCallingConfig", "function_calling_config", {})
    mode = str(cfg.get("mode", "AUTO")).upper()
    if mode == "NONE":
        return None
    if mode == "ANY":
        allowed = g(cfg, "allowedFunctionNames", "allowed_function_names", [])
        return next((d for d in decls if d.get("name") in allowed), decls[0])
    if has_resp or not _TOOL_WORDS.search(last_user):
        return None
    return decls[0]


def generate_content(req: Request, model: str, stream: bool) -> Response | StreamPlan:
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list) or not body["contents"]:
        return error(400, "* GenerateContentRequest.contents: contents is not specified")
    cfg = g(body, "generationConfig", "generation_config", {})
    text_t, media_t, last_user, has_resp = count_prompt(body)
    prompt = text_t + media_t
    seed = T.seed_of(model, last_user)
    n = max(int(g(cfg, "candidateCount", "candidate_count", 1)), 1)
    think_cfg = g(cfg, "thinkingConfig", "thinking_config")
    budget = g(think_cfg, "thinkingBudget", "thinking_budget")
    thinking = ("thinking" in model or "reason" in model or think_cfg is not None) and budget != 0
    thoughts = T.REASONING_TOKENS if thinking else 0
    include_thoughts = bool(g(think_cfg, "includeThoughts", "include_thoughts", False)) and thinking
    max_out = g(cfg, "maxOutputTokens", "max_output_tokens")
    limit = int(max_out) - thoughts if max_out is not None else None
    stops = [s for s in g(cfg, "stopSequences", "stop_sequences", []) if isinstance(s, str) and s]
    mime = str(g(cfg, "responseMimeType", "response_mime_type", ""))
    schema = g(cfg, "responseJsonSchema", "response_json_schema") or g(
        cfg, "responseSchema", "response_schema"
    )
    fn = _pick_function(body, last_user, has_resp)

    cands: list[
        tuple[list[dict[str, Any]], list[list[str]], str, int]
    ] = []  # parts, piece groups, finish, tokens
    total_out = 0
    for i in range(n):
        parts: list[dict[str, Any]] = []
        groups: list[list[str]] = []
        if include_thoughts:
            tp = T.generate(seed ^ 0x2F6B1C3D, thoughts)
            parts.append({"text": "".join(tp), "thought": True})
            groups.append(tp)
        if fn is not None:
            args = T.value_for_schema(
                g(fn, "parametersJsonSchema", "parameters_json_schema") or fn.get("parameters")
            )
            name = str(fn.get("name", ""))
            parts.append({"functionCall": {"name": name, "args": args}})
            tok = count_tokens(name) + count_tokens(dumps(args).decode())
            groups.append([])
            cands.append((parts, groups, "STOP", tok))
            total_out += tok
            continue
        if mime == "application/json":
            pieces = split_tokens(
                dumps(
                    T.value_for_schema(schema)
                    if schema
                    else {"answer": T.generate_text(seed + i * 7919, max(req.knobs.output_tokens - 8, 1))}
                ).decode()
            )
        else:
            pieces = T.generate(seed + i * 7919, req.knobs.output_tokens)
        finish = "STOP"
        if stops:
            txt = "".join(pieces)
            cut = min((j for j in (txt.find(s) for s in stops) if j >= 0), default=-1)
            if cut >= 0:
                pieces = split_tokens(txt[:cut])
        if limit is not None and len(pieces) > limit:
            pieces, finish = pieces[: max(limit, 0)], "MAX_TOKENS"
        parts.append({"text": "".join(pieces)})
        groups.append(pieces)
        cands.append((parts, groups, finish, len(pieces)))
        total_out += len(pieces)

    cached = T.cached_prefix_tokens(prompt)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": total_out,
        "totalTokenCount": prompt + total_out + thoughts * n,
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
    usage["promptTokensDetails"] = _details(text_t, media_t)
    if cached:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts * n
    rid = new_id("")
    if not stream:
        obj = {
            "candidates": [
                {"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": i}
                for i, (parts, _g, finish, _t) in enumerate(cands)
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": rid,
        }
        return Response(200, dumps(obj), gen_tokens=total_out + thoughts * n)

    partial = {
        "promptTokenCount": prompt,
        "totalTokenCount": prompt,
        "promptTokensDetails": usage["promptTokensDetails"],
    }
    events: list[tuple[dict[str, Any], int]] = []
    for i, (parts, groups, finish, _tok) in enumerate(cands):
        cand_events: list[tuple[dict[str, Any], int]] = []
        for part, pieces in zip(parts, groups, strict=True):
            if "functionCall" in part:
                cand_events.append(({"parts": [part], "role": "model"}, max(_tok, 1)))
                continue
            for grp in group_pieces(pieces, req.knobs.chunks) or [[]]:
                p: dict[str, Any] = {"text": "".join(grp)}
                if part.get("thought"):
                    p["thought"] = True
                cand_events.append(({"parts": [p], "role": "model"}, len(grp)))
        for j, (content, w) in enumerate(cand_events):
            cand: dict[str, Any] = {"content": content}
            if j == len(cand_events) - 1:
                cand["finishReason"] = finish
            cand["index"] = i
            events.append((cand, w))
    frames: list[bytes] = []
    weights: list[int] = []
    for j, (cand, w) in enumerate(events):
        last = j == len(events) - 1
        obj = {
            "candidates": [cand],
            "usageMetadata": usage if last else partial,
            "modelVersion": model,
            "responseId": rid,
        }
        frames.append(b"data: " + dumps(obj) + SEP)
        weights.append(w)
    tail: list[bytes] = []
    while frames and weights[-1] == 0 and len(frames) > 1:
        tail.insert(0, frames.pop())
        weights.pop()
    return StreamPlan([], frames, weights, tail, stream_error_frame(), SSE)


# --------------------------------------------------------------------------- embed / count / models


def _embed_one(model: str, r: Any) -> tuple[dict[str, Any], int]:
    content = g(r, "content", "content", {})
    parts = content.get("parts") if isinstance(content, dict) else None
    text = "".join(str(p.get("text", "")) for p in parts or () if isinstance(p, dict))
    dims = int(
        g(r, "outputDimensionality", "output_dimensionality", 0)
        or (3072 if "gemini-embedding" in model else 768)
    )
    return {"values": vectors.embedding(vectors.vector_seed(text.encode()), dims)}, count_tokens(text)


def embed_content(req: Request, model: str) -> Response:
    body = req.json()
    if not isinstance(body, dict) or "content" not in body:
        return error(400, "* EmbedContentRequest.content: content is not specified")
    emb, _ = _embed_one(model, body)
    return json_response(200, {"embedding": emb})


def batch_embed_contents(req: Request, model: str) -> Response:
    body = req.json()
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return error(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
    return json_response(200, {"embeddings": [_embed_one(model, r)[0] for r in requests]})


def count_tokens_endpoint(req: Request, model: str) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        return error(400)
    inner = g(body, "generateContentRequest", "generate_content_request", body)
    text_t, media_t, _, _ = count_prompt(inner)
    return json_response(
        200, {"totalTokens": text_t + media_t, "promptTokensDetails": _details(text_t, media_t)}
    )


SIM_MODELS = ("gemini-sim-flash", "gemini-sim-thinking", "gemini-embedding-sim")


def models(req: Request) -> Response:
    data = [
        {
            "name": f"models/{m}",
            "version": "001",
            "displayName": m.replace("-", " ").title(),
            "description": "perilune simulator model",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["embedContent"]
            if "embedding" in m
            else ["generateContent", "countTokens"],
        }
        for m in SIM_MODELS
    ]
    return json_response(200, {"models": data})
