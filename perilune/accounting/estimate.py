"""Local token estimates, used only when an upstream reports no usage (flagged ``estimated``)."""

from __future__ import annotations

from typing import Any

from perilune.tokens import count_tokens

PER_MESSAGE = 4  # role and framing tokens per chat message
PER_IMAGE = 85  # a low-detail image, as OpenAI bills it


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return count_tokens(content)
    n = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    n += count_tokens(part["text"])
                elif part.get("type") == "image_url":
                    n += PER_IMAGE
    return n


def chat_prompt_tokens(raw: dict[str, Any]) -> int:
    n = 0
    for m in raw.get("messages") or ():
        if isinstance(m, dict):
            n += PER_MESSAGE + _content_tokens(m.get("content"))
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict):
                    n += count_tokens(str(fn.get("name", ""))) + count_tokens(str(fn.get("arguments", "")))
    for t in raw.get("tools") or ():
        n += count_tokens(str(t))
    return n


def text_prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, str):
        return count_tokens(prompt)
    if isinstance(prompt, list):
        return sum(text_prompt_tokens(p) if not isinstance(p, int) else 1 for p in prompt)
    return 0


def chat_output_tokens(body: dict[str, Any]) -> int:
    n = 0
    for choice in body.get("choices") or ():
        msg = choice.get("message") or {}
        n += _content_tokens(msg.get("content"))
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            n += count_tokens(str(fn.get("name", ""))) + count_tokens(str(fn.get("arguments", "")))
        if isinstance(choice.get("text"), str):
            n += count_tokens(choice["text"])
    return n


def chunk_output_text(chunk: dict[str, Any]) -> str:
    """The visible text a stream chunk adds (content, tool arguments, legacy text)."""
    parts: list[str] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                fn = tc.get("function") or {}
                parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)
