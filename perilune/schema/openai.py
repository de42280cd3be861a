"""OpenAI-dialect request models: validation of what clients send to /v1/*.

Typed with msgspec (fast, and its errors carry the JSON path, which becomes the error's ``param``).
Fields the gateway does not know are not rejected: the raw mapping travels on to OpenAI-compatible
upstreams, so a parameter OpenAI adds tomorrow is not a 400 today.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson
from msgspec import Meta

from perilune.errors import InvalidRequest, MalformedJSON
from perilune.schema.routing import ROUTING_FIELDS, Fallbacks, ModelName, ProviderPrefs
from perilune.schema.text import check_depth, check_text

JSON = dict[str, Any]
T = TypeVar("T")


class _S(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# ---- chat content parts -------------------------------------------------------------------------

class ImageURL(_S):
    url: Annotated[str, Meta(min_length=1)]
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_S, tag_field="type", tag="text"):
    text: str


class ImagePart(_S, tag_field="type", tag="image_url"):
    image_url: ImageURL


class InputAudio(_S):
    data: str
    format: str


class AudioPart(_S, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class FilePart(_S, tag_field="type", tag="file"):
    file: dict[str, Any]


class RefusalPart(_S, tag_field="type", tag="refusal"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart
AssistantPart = TextPart | RefusalPart


# ---- messages -----------------------------------------------------------------------------------

class FunctionCall(_S):
    name: str
    arguments: str


class ToolCall(_S):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(_S, tag_field="role", tag="system"):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_S, tag_field="role", tag="developer"):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_S, tag_field="role", tag="user"):
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_S, tag_field="role", tag="assistant"):
    content: str | list[AssistantPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    function_call: FunctionCall | None = None
    reasoning_content: str | None = None


class ToolMessage(_S, tag_field="role", tag="tool"):
    content: str | list[TextPart]
    tool_call_id: str


class FunctionMessage(_S, tag_field="role", tag="function"):
    content: str | None
    name: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class FunctionDef(_S):
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_S):
    function: FunctionDef
    type: Literal["function"] = "function"


class NamedFunction(_S):
    name: str


class NamedToolChoice(_S):
    function: NamedFunction
    type: Literal["function"] = "function"


class ResponseFormat(_S):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_S):
    include_usage: bool | None = None


Temperature = Annotated[float, Meta(ge=0, le=2)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]
MAX_DIMENSIONS = 16384  # embeddings; the model's own limit (catalog max_dimensions) is checked on routing
Stop = str | Annotated[list[str], Meta(max_length=4)] | None


class ChatCompletionRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    stop: Stop = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    reasoning_effort: str | None = None
    # perilune's own fields; never forwarded upstream
    provider: str | ProviderPrefs | None = None
    observability: bool | None = None
    fallbacks: Fallbacks | None = None
    fallback_model: ModelName | None = None
    hedge: bool | None = None


class CompletionRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    prompt: str | list[str | int | list[int]]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    best_of: Annotated[int, Meta(ge=0, le=20)] | None = None
    stop: Stop = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    temperature: Temperature | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    echo: bool | None = None
    suffix: str | None = None
    seed: int | None = None
    user: str | None = None
    provider: str | ProviderPrefs | None = None
    observability: bool | None = None
    fallbacks: Fallbacks | None = None
    fallback_model: ModelName | None = None
    hedge: bool | None = None


class EmbeddingRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    # a string, a batch of strings, a token array or a batch of token arrays (see check_input_shape)
    input: Annotated[str, Meta(min_length=1)] | Annotated[list[str | int | list[int]],
                                                           Meta(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1, le=MAX_DIMENSIONS)] | None = None
    user: str | None = None
    provider: str | ProviderPrefs | None = None
    observability: bool | None = None
    fallbacks: Fallbacks | None = None
    fallback_model: ModelName | None = None


PERILUNE_FIELDS = ("provider", "observability", *ROUTING_FIELDS)


def check_input_shape(value: str | list[Any], param: str) -> None:
    """A list input must be all strings, all token ids, or all token arrays (no mixing)."""
    if isinstance(value, str):
        return
    kinds = {type(v) for v in value}
    if len(kinds) > 1:
        raise InvalidRequest(f"Invalid value for '{param}': a list must hold only strings, only token ids or "
                             "only token arrays.", param=param, code="invalid_value")
    if str in kinds and any(not v for v in value):
        raise InvalidRequest(f"Invalid value for '{param}': strings must not be empty.", param=param,
                             code="invalid_value")

_PATH = re.compile(r" - at `\$\.?(.*)`$")


def parse_body(body: bytes, model: type[T]) -> tuple[T, JSON]:
    """Decode and validate a JSON body: the typed view and the raw mapping (for passthrough)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedJSON(f"We could not parse the JSON body of your request: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    check_depth(body, raw)
    typed = validate(raw, model)
    _check_model_id(typed)
    return typed, raw


def _check_model_id(typed: object) -> None:
    """The model id is stored with the usage record: no NUL in it."""
    value = getattr(typed, "model", None)
    check_text(value if isinstance(value, str) else None, "model")


def validate(raw: JSON, model: type[T]) -> T:
    try:
        return msgspec.convert(raw, model)
    except msgspec.ValidationError as e:
        text = str(e)
        m = _PATH.search(text)
        param = m.group(1) if m else None
        reason = text[: m.start()] if m else text
        if reason.startswith("Object missing required field"):
            field_name = reason.split("`")[1]
            param = f"{param}.{field_name}" if param else field_name
            raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                                 code="missing_required_parameter") from None
        where = f"'{param}'" if param else "the request body"
        raise InvalidRequest(f"Invalid value for {where}: {reason}.", param=param,
                             code="invalid_value") from None
