"""Legacy completions for models that only chat (every Anthropic and Gemini model, most new ones).

The prompt becomes one user message; the chat answer comes back as a ``text_completion`` (the first
message's text per choice), and a chat stream as ``text_completion`` chunks. Pure converters: the
handler serves the chat request and renders with these.

Parameters with no chat meaning that would change the answer's form are a 400 ``Unsupported`` for such
models: several prompts at once, token-id prompts, ``echo``, ``suffix``, ``logprobs``, ``best_of`` above
1. Sampling (temperature, top_p, penalties, seed, stop, n), ``max_tokens`` and ``user`` carry over.
"""

from __future__ import annotations

from typing import Any

from perilune.errors import Unsupported
from perilune.schema.canonical import JSON

CARRIED = ("max_tokens", "temperature", "top_p", "n", "stop", "presence_penalty", "frequency_penalty", "seed",
           "user", "stream_options")


def _chat_only(what: str, param: str) -> Unsupported:
    return Unsupported(f"{what} is not available for a chat-only model through /v1/completions; use "
                       "/v1/chat/completions.", param=param)


def prompt_of(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        raise _chat_only("A batch of several prompts", "prompt")
    raise _chat_only("A prompt of token ids", "prompt")


def to_chat(raw: JSON) -> JSON:
    """A validated legacy completions request -> a chat request with the prompt as one user message."""
    if raw.get("echo"):
        raise _chat_only("echo", "echo")
    if raw.get("suffix"):
        raise _chat_only("suffix", "suffix")
    if raw.get("logprobs") is not None:
        raise _chat_only("logprobs", "logprobs")
    if isinstance(raw.get("best_of"), int) and raw["best_of"] > 1:
        raise _chat_only("best_of", "best_of")
    out: JSON = {"model": raw["model"], "messages": [{"role": "user", "content": prompt_of(raw.get("prompt"))}]}
    for name in CARRIED:
        if raw.get(name) is not None:
            out[name] = raw[name]
    if raw.get("stream"):
        out["stream"] = True
    return out


def _text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def completion_id(chat_id: Any) -> str:
    s = str(chat_id or "")
    return "cmpl-" + s.removeprefix("chatcmpl-") if s else "cmpl-perilune"


def from_chat(body: JSON) -> JSON:
    """A chat.completion -> a text_completion (usage is kept as it came)."""
    choices = []
    for i, c in enumerate(body.get("choices") or ()):
        if isinstance(c, dict):
            choices.append({"text": _text(c.get("message")), "index": c.get("index", i), "logprobs": None,
                            "finish_reason": c.get("finish_reason") or "stop"})
    out: JSON = {"id": completion_id(body.get("id")), "object": "text_completion", "created": body.get("created", 0),
                 "model": body.get("model"), "choices": choices}
    if body.get("system_fingerprint"):
        out["system_fingerprint"] = body["system_fingerprint"]
    if isinstance(body.get("usage"), dict):
        out["usage"] = body["usage"]
    return out


def chunk_from_chat(chunk: JSON) -> JSON | None:
    """A chat.completion.chunk -> a text_completion chunk; ``None`` for a chunk with neither text nor a
    finish reason (the role-only opening chunk) nor usage."""
    choices = []
    for i, c in enumerate(chunk.get("choices") or ()):
        if not isinstance(c, dict):
            continue
        delta = c.get("delta") or {}
        text = delta.get("content") if isinstance(delta.get("content"), str) else ""
        if not text and not c.get("finish_reason"):
            continue
        choices.append({"text": text, "index": c.get("index", i), "logprobs": None,
                        "finish_reason": c.get("finish_reason")})
    if not choices and not chunk.get("usage"):
        return None
    out: JSON = {"id": completion_id(chunk.get("id")), "object": "text_completion",
                 "created": chunk.get("created", 0), "model": chunk.get("model"), "choices": choices}
    if chunk.get("usage"):
        out["usage"] = chunk["usage"]
    return out


class OverChatEncoder:
    """Wraps the OpenAI dialect's encoder so a chat answer reaches the client as legacy completions:
    the body becomes a text_completion, each chunk a text_completion chunk (usage, cost and timings are
    added by the wrapped encoder, as for any completion)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.media_type: str = inner.media_type
        self.body_type: str = inner.body_type

    def body(self, result: JSON, served: Any) -> bytes:
        return bytes(self.inner.body(from_chat(result), served))

    def start(self, served: Any) -> bytes:
        return bytes(self.inner.start(served))

    def item(self, item: JSON, served: Any) -> bytes:
        chunk = chunk_from_chat(item)
        return bytes(self.inner.item(chunk, served)) if chunk is not None else b""

    def finish(self, served: Any) -> bytes:
        return bytes(self.inner.finish(served))

    def error(self, e: Any, served: Any) -> bytes:
        return bytes(self.inner.error(e, served))

    def text(self, item: JSON) -> str:
        return str(self.inner.text(item))

    def capture(self) -> Any:
        return self.inner.capture()

    def headers(self, served: Any) -> dict[str, str]:
        return dict(self.inner.headers(served))

    def passthrough(self, provider: str) -> bytes | None:
        return None  # every chunk is turned into a text_completion chunk
