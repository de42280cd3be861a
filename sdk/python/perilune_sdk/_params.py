"""Request parameters, one TypedDict per request body, keyword arguments of the client methods.

Each TypedDict lists exactly the body fields the SDK sends for its route (a test checks every one of
them against the gateway's ``/openapi.json``); :class:`RequestOptions` are per-call settings that never
go into the body.
"""


from collections.abc import Mapping, Sequence
from typing import Any, Literal, Required, TypedDict

JSONObject = Mapping[str, Any]


class RequestOptions(TypedDict, total=False):
    app_id: str  # sent as X-App-ID; shows as `app` in the usage log
    timeout: float  # seconds, for this call
    max_retries: int
    extra_headers: Mapping[str, str]
    extra_body: JSONObject  # merged into the JSON body (for fields this SDK does not know yet)


class ProviderPreferences(TypedDict, total=False):
    order: Sequence[str]
    only: Sequence[str]
    ignore: Sequence[str]
    sort: Literal["price", "latency", "throughput"]
    allow_fallbacks: bool


class _Routing(TypedDict, total=False):
    provider: str | ProviderPreferences  # a name forces one provider; an object steers the choice
    fallbacks: Sequence[str]  # models to try, in order, when the requested one fails
    fallback_model: str
    hedge: bool
    observability: bool  # store request and response with the usage record


class _ChatBody(_Routing, total=False):
    n: int
    stop: str | Sequence[str]
    max_tokens: int
    max_completion_tokens: int
    temperature: float
    top_p: float
    frequency_penalty: float
    presence_penalty: float
    seed: int
    logprobs: bool
    top_logprobs: int
    logit_bias: Mapping[str, float]
    tools: Sequence[JSONObject]
    tool_choice: str | JSONObject
    parallel_tool_calls: bool
    response_format: JSONObject
    user: str
    reasoning_effort: str


class ChatCreateParams(_ChatBody, RequestOptions, total=False):
    model: Required[str]
    messages: Required[Sequence[JSONObject]]


class CompletionCreateParams(_Routing, RequestOptions, total=False):
    model: Required[str]
    prompt: Required[str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]]
    n: int
    best_of: int
    stop: str | Sequence[str]
    max_tokens: int
    temperature: float
    top_p: float
    frequency_penalty: float
    presence_penalty: float
    logprobs: int
    echo: bool
    suffix: str
    seed: int
    user: str


class EmbeddingCreateParams(RequestOptions, total=False):
    model: Required[str]
    input: Required[str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]]
    encoding_format: Literal["float", "base64"]
    dimensions: int
    user: str
    provider: str | ProviderPreferences
    observability: bool
    fallbacks: Sequence[str]
    fallback_model: str


class MessageCreateParams(_Routing, RequestOptions, total=False):
    model: Required[str]
    max_tokens: Required[int]
    messages: Required[Sequence[JSONObject]]
    system: str | Sequence[JSONObject]
    metadata: JSONObject
    stop_sequences: Sequence[str]
    temperature: float
    top_p: float
    top_k: int
    tools: Sequence[JSONObject]
    tool_choice: JSONObject
    thinking: JSONObject


class CountTokensParams(RequestOptions, total=False):
    model: Required[str]
    messages: Required[Sequence[JSONObject]]
    system: str | Sequence[JSONObject]
    tools: Sequence[JSONObject]
    tool_choice: JSONObject
    thinking: JSONObject
    provider: str | ProviderPreferences


class ResponseStreamOptions(TypedDict, total=False):
    include_obfuscation: bool


class ResponseCreateParams(_Routing, RequestOptions, total=False):
    model: Required[str]
    input: str | Sequence[JSONObject]  # may be omitted with previous_response_id
    instructions: str
    tools: Sequence[JSONObject]
    tool_choice: str | JSONObject
    max_output_tokens: int
    max_tool_calls: int
    temperature: float
    top_p: float
    top_logprobs: int
    text: JSONObject  # e.g. {"format": {"type": "json_schema", ...}}
    reasoning: JSONObject  # e.g. {"effort": "low"}
    metadata: Mapping[str, str]
    store: bool
    background: bool
    previous_response_id: str
    parallel_tool_calls: bool
    user: str
    safety_identifier: str
    prompt_cache_key: str
    service_tier: str
    truncation: Literal["auto", "disabled"]
    include: Sequence[str]
    stream_options: ResponseStreamOptions  # with stream() only


class RouterParams(_ChatBody, RequestOptions, total=False):
    messages: Required[Sequence[JSONObject]]
    models: Sequence[str]  # the candidates (>= 2); default: every profiled model served here
    cost_weight: float  # 0 ignores cost; higher prefers cheaper models


class FeedbackParams(RequestOptions, total=False):
    request_id: Required[str]
    score: Required[float]  # quality in [0, 1]


class AlertParams(RequestOptions, total=False):
    thresholds_usd: Sequence[str | int]  # decimal strings, e.g. ["5", "1.50"]
    webhook_url: str | None


OPTION_KEYS = frozenset(RequestOptions.__annotations__)


def split(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body fields, request options) of a method's keyword arguments."""
    body = {k: v for k, v in params.items() if k not in OPTION_KEYS}
    opts = {k: v for k, v in params.items() if k in OPTION_KEYS}
    extra = opts.get("extra_body")
    if extra:
        body.update(extra)
    return body, opts
