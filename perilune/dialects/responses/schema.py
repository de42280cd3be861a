"""The Responses API request (``CreateResponse`` in OpenAI's OpenAPI spec), validated with msgspec.

Typed fields are checked (a wrong type or range is a 400 naming the param); fields perilune does not
model are kept in the raw mapping, so they reach upstreams that speak Responses natively. Input items
are checked one by one in :mod:`.to_hub`, where each item kind is translated, so a bad item is named
with its path (``input[2].content[0].image_url``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from perilune.schema.routing import ROUTING_FIELDS, Fallbacks, ModelName, ProviderPrefs


class _S(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class JsonSchemaFormat(_S, tag_field="type", tag="json_schema"):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class TextFormat(_S, tag_field="type", tag="text"):
    pass


class JsonObjectFormat(_S, tag_field="type", tag="json_object"):
    pass


Format = JsonSchemaFormat | TextFormat | JsonObjectFormat


class TextParam(_S):
    format: Format | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningParam(_S):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(_S):
    include_obfuscation: bool | None = None


class ResponsesRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: Annotated[str, Meta(min_length=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_tool_calls: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    text: TextParam | None = None
    reasoning: ReasoningParam | None = None
    metadata: Annotated[dict[str, Annotated[str, Meta(max_length=512)]], Meta(max_length=16)] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    background: bool | None = None
    # perilune's own fields; never forwarded upstream
    provider: str | ProviderPrefs | None = None
    observability: bool | None = None
    fallbacks: Fallbacks | None = None
    fallback_model: ModelName | None = None
    hedge: bool | None = None


PERILUNE_FIELDS = ("provider", "observability", *ROUTING_FIELDS)
