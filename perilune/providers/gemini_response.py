"""Gemini answers -> OpenAI-shaped chat completions, chunks and embedding lists, plus canonical usage.

``usageMetadata.promptTokenCount`` includes ``cachedContentTokenCount``; ``thoughtsTokenCount`` is not
part of ``candidatesTokenCount``. Canonically: input = prompt - cached (+ tool-use prompt tokens),
cache_read = cached, output = candidates + thoughts, reasoning = thoughts. A streamed answer reports its
final counts on the last event; the decoder only trusts them once every candidate it saw has finished,
so a stream cut short is never mistaken for a complete one.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from perilune._http import status_error
from perilune._sse import SSEEvent
from perilune.errors import UpstreamUnavailable
from perilune.providers.base import EventDecoder, Result, load_object
from perilune.schema.canonical import JSON, Usage

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}


def error_info(body: bytes | dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(message, ErrorInfo reason, retry delay in seconds) of a ``{"error": {code, message, status}}``."""
    if isinstance(body, dict):
        obj: Any = body
    else:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body[:300].decode("utf-8", "replace").strip(), None, None
    if isinstance(obj, list) and obj:  # streamGenerateContent without alt=sse wraps errors in a list
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return str(obj)[:300], None, None
    message = str(err.get("message") or "")
    if err.get("status"):
        message = f"{err['status']}: {message}"
    reason = retry = None
    for d in err.get("details") or ():
        if not isinstance(d, dict):
            continue
        kind = str(d.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo"):
            reason = d.get("reason")
        elif kind.endswith("google.rpc.RetryInfo") and isinstance(d.get("retryDelay"), str):
            retry = d["retryDelay"].rstrip("s")
    return message, reason, retry


def usage_of(meta: Any) -> Usage | None:
    if not isinstance(meta, dict) or meta.get("promptTokenCount") is None:
        return None
    prompt = int(meta.get("promptTokenCount") or 0)
    cached = min(int(meta.get("cachedContentTokenCount") or 0), prompt)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(input_tokens=prompt - cached + int(meta.get("toolUsePromptTokenCount") or 0),
                 cache_read_tokens=cached,
                 output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
                 reasoning_tokens=thoughts)


def _tool_call(fc: dict[str, Any], signature: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": str(fc.get("id") or "call_" + os.urandom(12).hex()),
        "type": "function",
        "function": {"name": str(fc.get("name", "")),
                     "arguments": orjson.dumps(fc.get("args") or {}).decode()},
    }
    if isinstance(signature, str) and signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def split_parts(parts: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """(visible text, thought text, tool calls) of a candidate's parts."""
    text: list[str] = []
    thought: list[str] = []
    calls: list[dict[str, Any]] = []
    for p in parts if isinstance(parts, list) else ():
        if not isinstance(p, dict):
            continue
        fc = p.get("functionCall")
        if isinstance(fc, dict):
            calls.append(_tool_call(fc, p.get("thoughtSignature")))
        elif isinstance(p.get("text"), str):
            (thought if p.get("thought") else text).append(p["text"])
    return "".join(text), "".join(thought), calls


def logprobs_of(result: Any) -> dict[str, Any] | None:
    if not isinstance(result, dict):
        return None
    tops = result.get("topCandidates") or []
    def entry(c: dict[str, Any]) -> dict[str, Any]:
        token = str(c.get("token", ""))
        return {"token": token, "logprob": c.get("logProbability", 0.0), "bytes": list(token.encode())}

    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or ()):
        alts = tops[i].get("candidates", []) if i < len(tops) and isinstance(tops[i], dict) else []
        content.append({**entry(chosen), "top_logprobs": [entry(a) for a in alts]})
    return {"content": content, "refusal": None}


def finish_reason(raw: Any, tool_calls: bool) -> str | None:
    if not raw:
        return None
    reason = FINISH.get(str(raw), "stop")
    return "tool_calls" if tool_calls and reason == "stop" else reason


def _blocked(obj: dict[str, Any]) -> bool:
    feedback = obj.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def parse_chat(body: bytes) -> Result:
    obj = load_object(body, "gemini", "response body")
    choices = []
    for pos, cand in enumerate(obj.get("candidates") or ()):
        text, thought, calls = split_parts((cand.get("content") or {}).get("parts"))
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else text),
                                   "refusal": None}
        if thought:
            message["reasoning_content"] = thought
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": cand.get("index", pos), "message": message,
                        "finish_reason": finish_reason(cand.get("finishReason"), bool(calls)) or "stop",
                        "logprobs": logprobs_of(cand.get("logprobsResult"))})
    if not choices and _blocked(obj):
        choices.append({"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                        "finish_reason": "content_filter", "logprobs": None})
    out: JSON = {
        "id": "chatcmpl-" + str(obj.get("responseId") or os.urandom(12).hex()),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(obj.get("modelVersion") or "gemini"),
        "choices": choices,
    }
    return Result(out, usage_of(obj.get("usageMetadata")))


def parse_embeddings(body: bytes) -> Result:
    obj = load_object(body, "gemini", "response body")
    items = obj.get("embeddings")
    if not isinstance(items, list):
        raise UpstreamUnavailable("gemini sent an embeddings answer without 'embeddings'",
                                  code="upstream_malformed")
    data = [{"object": "embedding", "index": i, "embedding": (e or {}).get("values") or []}
            for i, e in enumerate(items)]
    return Result({"object": "list", "data": data}, None)  # batchEmbedContents reports no usage


class GeminiStreamDecoder(EventDecoder):
    """``data: GenerateContentResponse`` events -> OpenAI ``chat.completion.chunk`` mappings."""

    __slots__ = ("_calls", "_created", "_finished", "_id", "_meta", "_model", "_seen", "done", "name",
                 "upstream_usage", "usage")

    def __init__(self, name: str) -> None:
        self.name = name
        self.usage: Usage | None = None
        self.upstream_usage: JSON | None = None  # Gemini's usage is not OpenAI-shaped
        self.done = False  # Gemini has no end marker: the stream ends with the connection
        self._id = ""
        self._model = "gemini"
        self._created = int(time.time())
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # choice index -> tool calls sent
        self._meta: Any = None

    def interim_usage(self, output_tokens: int) -> Usage | None:
        return None  # this upstream reports usage only at the end

    def feed(self, event: SSEEvent) -> list[JSON]:
        if not event.data.strip():
            return []
        obj = load_object(event.data, self.name, "stream event")
        err = obj.get("error")
        if err is not None:
            message, _, retry = error_info(obj)
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            raise status_error(self.name, status, f"error in stream: {message}", retry)
        if not self._id:
            self._id = "chatcmpl-" + str(obj.get("responseId") or os.urandom(12).hex())
        self._model = str(obj.get("modelVersion") or self._model)
        if obj.get("usageMetadata"):
            self._meta = obj["usageMetadata"]
        choices = [c for pos, cand in enumerate(obj.get("candidates") or ())
                   if (c := self._choice(cand, pos)) is not None]
        if not choices and _blocked(obj) and not self._seen:
            self._seen.add(0)
            self._finished.add(0)
            choices.append({"index": 0, "delta": {"role": "assistant", "content": ""},
                            "finish_reason": "content_filter", "logprobs": None})
        if self._seen and self._seen <= self._finished:
            self.usage = usage_of(self._meta)
        if not choices:
            return []
        return [{"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                 "model": self._model, "choices": choices}]

    def _choice(self, cand: dict[str, Any], pos: int) -> dict[str, Any] | None:
        index = int(cand.get("index", pos))
        delta: dict[str, Any] = {}
        if index not in self._seen:
            self._seen.add(index)
            delta["role"] = "assistant"
        text, thought, calls = split_parts((cand.get("content") or {}).get("parts"))
        if text or ("role" in delta and not calls):
            delta["content"] = text
        if thought:
            delta["reasoning_content"] = thought
        if calls:
            first = self._calls.get(index, 0)
            delta["tool_calls"] = [{"index": first + k, **c} for k, c in enumerate(calls)]
            self._calls[index] = first + len(calls)
        finish = finish_reason(cand.get("finishReason"), index in self._calls)
        if finish:
            self._finished.add(index)
        if not delta and finish is None:
            return None
        return {"index": index, "delta": delta, "finish_reason": finish,
                "logprobs": logprobs_of(cand.get("logprobsResult"))}
