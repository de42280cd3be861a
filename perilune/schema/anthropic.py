"""Anthropic-dialect request models: validation of what clients send to /v1/messages.

Typed with msgspec like :mod:`perilune.schema.openai`; the raw mapping is what travels on (to an
Anthropic upstream as-is, or through :mod:`perilune.schema.convert` to any other), so fields the
gateway does not model (``cache_control``, ``citations``, ``signature``...) are never lost. Block types
are a closed set: an unknown ``type`` is a 400 naming its path, as the Anthropic API does.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson
from msgspec import Meta

from perilune.errors import InvalidRequest, MalformedJSON
from perilune.schema.canonical import JSON
from perilune.schema.routing import ROUTING_FIELDS, Fallbacks, ModelName, ProviderPrefs
from perilune.schema.text import check_depth, check_text

T = TypeVar("T")
_PATH = re.compile(r" - at `\$\.?(.*)`$")


class _S(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# ---- sources ----------------------------------------------------------------------------------

class Base64Source(_S, tag_field="type", tag="base64"):
    media_type: str
    data: str


class URLSource(_S, tag_field="type", tag="url"):
    url: Annotated[str, Meta(min_length=1)]


class FileSource(_S, tag_field="type", tag="file"):
    file_id: str


class TextSource(_S, tag_field="type", tag="text"):
    media_type: str
    data: str


class ContentSource(_S, tag_field="type", tag="content"):
    content: str | list[dict[str, Any]]


ImageSource = Base64Source | URLSource | FileSource
DocumentSource = Base64Source | URLSource | FileSource | TextSource | ContentSource


# ---- content blocks ---------------------------------------------------------------------------

class TextBlock(_S, tag_field="type", tag="text"):
    text: str


class ImageBlock(_S, tag_field="type", tag="image"):
    source: ImageSource


class DocumentBlock(_S, tag_field="type", tag="document"):
    source: DocumentSource
    title: str | None = None


class SearchResultBlock(_S, tag_field="type", tag="search_result"):
    source: str
    title: str
    content: list[TextBlock]


class ToolUseBlock(_S, tag_field="type", tag="tool_use"):
    id: Annotated[str, Meta(min_length=1)]
    name: Annotated[str, Meta(min_length=1)]
    input: dict[str, Any]


ToolResultPart = TextBlock | ImageBlock | DocumentBlock | SearchResultBlock


class ToolResultBlock(_S, tag_field="type", tag="tool_result"):
    tool_use_id: Annotated[str, Meta(min_length=1)]
    content: str | list[ToolResultPart] | None = None
    is_error: bool | None = None


class ThinkingBlock(_S, tag_field="type", tag="thinking"):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_S, tag_field="type", tag="redacted_thinking"):
    data: str


# Server-tool blocks (web search, code execution, MCP...): valid in history, served only by Anthropic
# upstreams (native passthrough); converting them for another provider is a 400 ``Unsupported``.
class ServerToolUseBlock(_S, tag_field="type", tag="server_tool_use"):
    id: str
    name: str


class WebSearchToolResultBlock(_S, tag_field="type", tag="web_search_tool_result"):
    tool_use_id: str


class WebFetchToolResultBlock(_S, tag_field="type", tag="web_fetch_tool_result"):
    tool_use_id: str


class CodeExecutionToolResultBlock(_S, tag_field="type", tag="code_execution_tool_result"):
    tool_use_id: str


class MCPToolUseBlock(_S, tag_field="type", tag="mcp_tool_use"):
    id: str
    name: str


class MCPToolResultBlock(_S, tag_field="type", tag="mcp_tool_result"):
    tool_use_id: str


class ContainerUploadBlock(_S, tag_field="type", tag="container_upload"):
    file_id: str


Block = (TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ToolUseBlock | ToolResultBlock
         | ThinkingBlock | RedactedThinkingBlock | ServerToolUseBlock | WebSearchToolResultBlock
         | WebFetchToolResultBlock | CodeExecutionToolResultBlock | MCPToolUseBlock | MCPToolResultBlock
         | ContainerUploadBlock)
BLOCK_TYPES = ("text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
               "redacted_thinking", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
               "code_execution_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload")


class InputMessage(_S):
    """A turn. ``system`` turns inside ``messages`` (Anthropic's mid-conversation system messages, which
    Claude Code sends) hold text only; they pass natively to Anthropic upstreams and are folded into the
    system prompt for any other (:func:`perilune.schema.convert.to_openai_request`)."""

    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


# ---- tools, choices, thinking -----------------------------------------------------------------

class ToolSpec(_S):
    """A client tool (``input_schema``) or a server tool (``type`` such as ``web_search_20250305``)."""

    name: Annotated[str, Meta(min_length=1, max_length=128)]
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    strict: bool | None = None


class ToolChoiceAuto(_S, tag_field="type", tag="auto"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_S, tag_field="type", tag="any"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_S, tag_field="type", tag="tool"):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_S, tag_field="type", tag="none"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingEnabled(_S, tag_field="type", tag="enabled"):
    budget_tokens: Annotated[int, Meta(ge=1024, le=2**31 - 1)]


class ThinkingDisabled(_S, tag_field="type", tag="disabled"):
    pass


class ThinkingAdaptive(_S, tag_field="type", tag="adaptive"):
    pass


Thinking = ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive


class Metadata(_S):
    user_id: str | None = None


System = str | list[TextBlock]


class MessagesRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1, le=2**31 - 1)]
    messages: Annotated[list[InputMessage], Meta(min_length=1)]
    system: System | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: Metadata | None = None
    # perilune's own fields; never forwarded upstream
    provider: str | ProviderPrefs | None = None
    observability: bool | None = None
    fallbacks: Fallbacks | None = None
    fallback_model: ModelName | None = None
    hedge: bool | None = None


class CountTokensRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[InputMessage], Meta(min_length=1)]
    system: System | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    provider: str | ProviderPrefs | None = None


PERILUNE_FIELDS = ("provider", "observability", *ROUTING_FIELDS)


# ---- parsing ----------------------------------------------------------------------------------

def parse_body(body: bytes, model: type[T]) -> tuple[T, JSON]:
    """Decode and validate an Anthropic-dialect body: the typed view and the raw mapping."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedJSON(f"There was an issue with the JSON body of your request: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    check_depth(body, raw)
    typed = validate(raw, model)
    value = getattr(typed, "model", None)
    check_text(value if isinstance(value, str) else None, "model")  # stored with the usage record
    messages = getattr(typed, "messages", None)
    if messages is not None:
        check_tool_results(messages)
    return typed, raw


def validate(raw: JSON, model: type[T]) -> T:
    try:
        return msgspec.convert(raw, model)
    except msgspec.ValidationError as e:
        text = str(e)
        m = _PATH.search(text)
        path = m.group(1) if m else ""
        reason = text[: m.start()] if m else text
        if reason.startswith("Object missing required field"):
            field_name = reason.split("`")[1]
            param = f"{path}.{field_name}" if path else field_name
            raise InvalidRequest(f"{param}: Field required", param=param,
                                 code="missing_required_parameter") from None
        if path.endswith(".type") and reason.startswith("Invalid value"):
            where = path[: -len(".type")]
            kind = "content block" if ".content[" in where or where.startswith("system[") else "object"
            raise InvalidRequest(f"{where}: unknown {kind} type {reason[len('Invalid value '):]}; expected "
                                 f"one of: {_expected(where)}.", param=path, code="invalid_value") from None
        raise InvalidRequest(f"{path or 'body'}: {reason}", param=path or None,
                             code="invalid_value") from None


def _expected(where: str) -> str:
    if where.endswith("source"):
        return "base64, url, file, text, content"
    if where.startswith("tool_choice"):
        return "auto, any, tool, none"
    if where.startswith("thinking"):
        return "enabled, disabled, adaptive"
    if where.startswith("system"):
        return "text"
    return ", ".join(BLOCK_TYPES)


def check_tool_results(messages: list[InputMessage]) -> None:
    """Every ``tool_result`` must answer a ``tool_use`` of an earlier assistant turn."""
    seen: set[str] = set()
    for i, m in enumerate(messages):
        if isinstance(m.content, str):
            continue
        if m.role == "system":
            for j, b in enumerate(m.content):
                if not isinstance(b, TextBlock):
                    raise InvalidRequest(f"messages.{i}.content.{j}: a system message may hold only text blocks.",
                                         param=f"messages[{i}].content[{j}]")
            continue
        for j, b in enumerate(m.content):
            if isinstance(b, ToolUseBlock):
                if m.role != "assistant":
                    raise InvalidRequest(f"messages.{i}.content.{j}: tool_use blocks may only appear in "
                                         "assistant messages.", param=f"messages[{i}].content[{j}]")
                seen.add(b.id)
            elif isinstance(b, ToolResultBlock):
                if m.role != "user":
                    raise InvalidRequest(f"messages.{i}.content.{j}: tool_result blocks may only appear in "
                                         "user messages.", param=f"messages[{i}].content[{j}]")
                if b.tool_use_id not in seen:
                    raise InvalidRequest(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{b.tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in a previous message.", param=f"messages[{i}].content[{j}].tool_use_id")
