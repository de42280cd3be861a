"""The routing fields of a request body: parsed in both dialects, 400 naming the param, never sent upstream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from perilune.errors import InvalidRequest
from perilune.providers.anthropic import AnthropicAdapter
from perilune.providers.base import CHAT, Provider
from perilune.providers.openai_compat import OpenAICompatAdapter
from perilune.schema import anthropic as anth
from perilune.schema import openai as oai
from perilune.schema.routing import ProviderPrefs, fallback_models
from perilune.settings import Timeouts

CHAT_BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MSG_BODY: dict[str, Any] = {**CHAT_BODY, "max_tokens": 10}
ROUTING = {"provider": {"order": ["a", "b"], "ignore": ["c"], "sort": "latency", "allow_fallbacks": False},
           "fallbacks": ["x", "y"], "fallback_model": "z", "hedge": True, "observability": True}


def test_both_dialects_parse_the_routing_fields() -> None:
    for model, body in ((oai.ChatCompletionRequest, CHAT_BODY), (anth.MessagesRequest, MSG_BODY)):
        req = oai.validate({**body, **ROUTING}, model) if model is oai.ChatCompletionRequest else \
            anth.validate({**body, **ROUTING}, model)
        assert req.provider == ProviderPrefs(order=["a", "b"], ignore=["c"], sort="latency", allow_fallbacks=False)
        assert fallback_models(req.fallbacks, req.fallback_model) == ("x", "y", "z")
        assert req.hedge is True
    assert oai.validate({**CHAT_BODY, "provider": "groq"}, oai.ChatCompletionRequest).provider == "groq"
    assert fallback_models(None, None) is None and fallback_models([], None) == ()


@pytest.mark.parametrize(("field", "value", "param"), [
    ("provider", {"sort": "cheapest"}, "provider.sort"),
    ("provider", {"order": "a"}, "provider.order"),
    ("provider", {"only": [""]}, "provider.only[0]"),
    ("provider", 7, "provider"),
    ("fallbacks", "x", "fallbacks"),
    ("fallbacks", [""], "fallbacks[0]"),
    ("fallbacks", ["m"] * 17, "fallbacks"),
    ("fallback_model", ["x"], "fallback_model"),
    ("hedge", "yes", "hedge"),
])
def test_bad_values_name_the_param(field: str, value: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        oai.validate({**CHAT_BODY, field: value}, oai.ChatCompletionRequest)
    assert e.value.param == param
    with pytest.raises(InvalidRequest) as e:
        anth.validate({**MSG_BODY, field: value}, anth.MessagesRequest)
    assert e.value.param == param


def provider(ptype: str) -> Provider:
    return Provider(name="p", type=ptype, base_url="http://127.0.0.1:1", api_key="k", api_key_env=None,
                    needs_key=True, timeouts=Timeouts())


def test_routing_fields_never_go_upstream() -> None:
    sent = orjson.loads(OpenAICompatAdapter().build(CHAT, provider("openai-compatible"), "up", {**CHAT_BODY, **ROUTING},
                                                    stream=False).body or b"{}")
    assert not set(ROUTING) & set(sent) and sent["model"] == "up"
    native = AnthropicAdapter().build("anthropic.messages", provider("anthropic"), "up", {**MSG_BODY, **ROUTING},
                                      stream=False)
    assert not set(ROUTING) & set(orjson.loads(native.body or b"{}"))
    translated = AnthropicAdapter().build(CHAT, provider("anthropic"), "up", {**CHAT_BODY, **ROUTING}, stream=False)
    assert not set(ROUTING) & set(orjson.loads(translated.body or b"{}"))
