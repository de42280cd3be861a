"""OpenAI-dialect request models for images and audio: /v1/images/generations, /v1/audio/transcriptions.

As for chat, fields the gateway does not know pass through to OpenAI-compatible upstreams.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class _S(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class ImageGenerationRequest(_S):
    model: Annotated[str, Meta(min_length=1)]
    prompt: Annotated[str, Meta(min_length=1)]
    n: Annotated[int, Meta(ge=1, le=10)] | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    background: str | None = None
    moderation: str | None = None
    output_format: str | None = None
    output_compression: Annotated[int, Meta(ge=0, le=100)] | None = None
    stream: bool | None = None
    user: str | None = None
    # perilune's own fields; never forwarded upstream
    provider: str | None = None
    observability: bool | None = None


TranscriptionFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class TranscriptionRequest(_S):
    """The non-file fields of a multipart transcription upload (values already decoded from the form)."""

    model: Annotated[str, Meta(min_length=1)]
    language: str | None = None
    prompt: str | None = None
    response_format: TranscriptionFormat = "json"
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    timestamp_granularities: list[Literal["word", "segment"]] | None = None
    stream: bool | None = None
    provider: str | None = None
    observability: bool | None = None
