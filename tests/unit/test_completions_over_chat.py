"""Legacy completions for chat-only models: prompt -> one user message, the answer back as a
text_completion (checked against OpenAI's CreateCompletionResponse schema)."""

from __future__ import annotations

from typing import Any

import pytest

from perilune.dialects.completions.over_chat import chunk_from_chat, from_chat, to_chat
from perilune.errors import Unsupported
from tests.openai_schema import check


def test_prompt_becomes_one_user_message() -> None:
    raw = {"model": "sim-claude", "prompt": "Say this is a test", "max_tokens": 7, "temperature": 0,
           "stop": ["\n"], "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    assert to_chat(raw) == {"model": "sim-claude", "messages": [{"role": "user", "content": "Say this is a test"}],
                            "max_tokens": 7, "temperature": 0, "stop": ["\n"], "n": 2,
                            "stream_options": {"include_usage": True}, "stream": True}
    assert to_chat({"model": "m", "prompt": ["only one"]})["messages"][0]["content"] == "only one"


@pytest.mark.parametrize(("extra", "param"), [
    ({"prompt": ["a", "b"]}, "prompt"), ({"prompt": [1, 2, 3]}, "prompt"), ({"echo": True}, "echo"),
    ({"suffix": "x"}, "suffix"), ({"logprobs": 2}, "logprobs"), ({"best_of": 3}, "best_of"),
])
def test_what_chat_cannot_do_is_a_400(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(Unsupported) as e:
        to_chat({"model": "m", "prompt": "x", **extra})
    assert e.value.param == param


def test_chat_completion_becomes_a_text_completion() -> None:
    body = {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "sim-claude",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "This is a test."},
                         "finish_reason": "stop"},
                        {"index": 1, "message": {"role": "assistant", "content": "Also"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}
    out = from_chat(body)
    check("CreateCompletionResponse", out)
    assert out["id"] == "cmpl-abc" and out["object"] == "text_completion"
    assert [(c["text"], c["finish_reason"]) for c in out["choices"]] == [("This is a test.", "stop"),
                                                                         ("Also", "length")]
    assert out["usage"] == body["usage"]


def test_chunks_become_text_completion_chunks() -> None:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    assert chunk_from_chat({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}) is None
    c = chunk_from_chat({**base, "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
    assert c == {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                 "choices": [{"text": "Hi", "index": 0, "logprobs": None, "finish_reason": None}]}
    end = chunk_from_chat({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert end is not None and end["choices"][0] == {"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}
