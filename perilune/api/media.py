"""The OpenAI dialect's media routes: /v1/images/generations and /v1/audio/transcriptions.

Images are priced per image returned. Transcriptions are priced per audio minute from the duration the
upstream reports: models that can answer ``verbose_json`` (the catalog lists ``timestamp_granularities``
for them) are always asked for it, and the client's own format (json, text, srt, vtt) is rendered here
from it, so the duration is known whatever the client asked for. Other models (gpt-4o-transcribe and
kin) report tokens, not duration: their duration is estimated from the upload and flagged ``estimated``.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from perilune.accounting.pricing import usd_decimal
from perilune.api.common import Ctx, endpoint
from perilune.errors import InvalidRequest, PayloadTooLarge, Unsupported
from perilune.gateway.pipeline import Call
from perilune.gateway.relay import OpenAIEncoder, Served, openai_usage
from perilune.providers.base import IMAGES, TRANSCRIPTIONS, Result, Upload
from perilune.schema.canonical import JSON, Usage
from perilune.schema.media import ImageGenerationRequest, TranscriptionRequest
from perilune.schema.openai import parse_body, validate

#: Compressed audio (mp3, m4a, ogg) at 128 kbit/s: the rate assumed when an upload's duration must be
#: estimated and the file is not a WAV whose header tells it exactly.
ESTIMATE_BYTES_PER_SECOND = 16000
TEXT_FORMATS = ("text", "srt", "vtt")
_CHUNK = 64 * 1024
_TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _usage(served: Served, upstream: Any, **extra: Any) -> JSON:
    """``openai_usage`` for a media answer: cost and timings, without token counts nobody reported."""
    up = upstream if isinstance(upstream, dict) else None
    out = openai_usage(served, up)
    if up is None or "prompt_tokens" not in up:
        for key in _TOKEN_KEYS:
            if out.get(key) == 0:
                del out[key]
    out.update(extra)
    return out


# ---- images -------------------------------------------------------------------------------------

class _ImagesEncoder(OpenAIEncoder):
    def body(self, result: JSON, served: Served) -> bytes:
        result["provider"] = served.provider
        images = served.usage.images if served.usage is not None else 0
        result["usage"] = _usage(served, result.get("usage"), images=images)
        return orjson.dumps(result)


def _count_images(result: Result) -> Usage:
    data = result.body.get("data")
    usage = result.usage or Usage()
    usage.images = len(data) if isinstance(data, list) else 0
    return usage


@endpoint("openai", "images", records=True)
async def image_generations(ctx: Ctx) -> web.StreamResponse:
    req, raw = parse_body(await ctx.body(), ImageGenerationRequest)
    ctx.lifecycle.model_requested = req.model
    if req.stream:
        raise Unsupported("Streamed image generation is not supported by perilune yet; omit 'stream'.",
                          param="stream")
    n = req.n if isinstance(req.n, int) and req.n > 0 else 1
    unit = _per_image(ctx, req.model, req.provider) * n
    call = Call(IMAGES, req.model, raw, provider=req.provider, generates=False, unit_usd=unit,
                usage=_count_images)
    return await ctx.serve(call, lambda _native: _ImagesEncoder())


def _per_image(ctx: Ctx, model: str, provider: str | None) -> Decimal:
    d = ctx.services.router.resolve(model, IMAGES, provider)[0]
    return d.model.effective_price.per_image or Decimal(0)


# ---- audio transcriptions -----------------------------------------------------------------------

async def read_form(request: web.Request, limit: int) -> tuple[dict[str, list[str]], Upload | None]:
    """A multipart/form-data body read part by part, never more than ``limit`` bytes of it."""
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("Uploads must be sent as multipart/form-data.", code="invalid_content_type")
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The upload is {length} bytes; the limit is {limit} bytes.")
    fields: dict[str, list[str]] = {}
    upload: Upload | None = None
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise InvalidRequest("Nested multipart bodies are not supported.")
            data = bytearray()
            while chunk := await part.read_chunk(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes.")
                data += chunk
            name = part.name or ""
            if name == "file":
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                upload = Upload(part.filename or "audio", ctype, bytes(data))
            elif part.filename is not None:
                raise InvalidRequest(f"Unexpected file in field '{name}'; the audio goes in 'file'.",
                                     param=name)
            else:
                fields.setdefault(name, []).append(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, aiohttp.ClientPayloadError, HttpProcessingError) as e:
        raise InvalidRequest(f"The multipart body could not be read: {e}", code="invalid_multipart") from None
    return fields, upload


def _transcription_request(fields: dict[str, list[str]]) -> TranscriptionRequest:
    raw: dict[str, Any] = {k: v[-1] for k, v in fields.items() if k in TranscriptionRequest.__struct_fields__}
    grans = fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", [])
    raw["timestamp_granularities"] = grans or None
    if "temperature" in raw:
        try:
            raw["temperature"] = float(raw["temperature"])
        except ValueError:
            raise InvalidRequest("Invalid value for 'temperature': expected a number.", param="temperature",
                                 code="invalid_value") from None
    if "stream" in raw:
        raw["stream"] = raw["stream"].strip().lower() in ("true", "1")
    return validate({k: v for k, v in raw.items() if v is not None}, TranscriptionRequest)


def wav_seconds(data: bytes) -> Decimal | None:
    """Duration of a RIFF/WAVE file from its header (``data`` size / byte rate), else ``None``."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if kind == b"fmt " and size >= 16 and pos + 20 <= len(data):
            byte_rate = struct.unpack_from("<I", data, pos + 16)[0]
        elif kind == b"data" and byte_rate:
            size = min(size, len(data) - pos - 8)
            return (Decimal(size) / Decimal(byte_rate)).quantize(Decimal("0.001"))
        pos += 8 + size + (size & 1)
    return None


def estimate_audio_seconds(upload: Upload) -> Decimal:
    exact = wav_seconds(upload.data)
    return exact if exact is not None else Decimal(len(upload.data)) / ESTIMATE_BYTES_PER_SECOND


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitles(body: JSON, fmt: str) -> str:
    """SRT or WebVTT cues from a ``verbose_json`` transcription's segments."""
    segments = body.get("segments") or [{"start": 0.0, "end": float(body.get("duration") or 0.0),
                                         "text": str(body.get("text", ""))}]
    sep = "," if fmt == "srt" else "."
    lines = [] if fmt == "srt" else ["WEBVTT", ""]
    for i, seg in enumerate(segments):
        if fmt == "srt":
            lines.append(str(i + 1))
        start, end = _timestamp(float(seg.get("start", 0)), sep), _timestamp(float(seg.get("end", 0)), sep)
        lines += [f"{start} --> {end}", str(seg.get("text", "")).strip(), ""]
    return "\n".join(lines) + "\n"


class _TranscriptionEncoder(OpenAIEncoder):
    """The client's format (json, verbose_json, text, srt, vtt) rendered from the verbose answer."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt
        self.body_type = "text/plain; charset=utf-8" if fmt in TEXT_FORMATS else "application/json"

    def headers(self, served: Served) -> dict[str, str]:
        usage = served.usage or Usage()
        cost = served.cost.total_usd if served.cost is not None else Decimal(0)
        out = {"x-perilune-provider": served.provider, "x-perilune-audio-seconds": str(usage.audio_seconds),
               "x-perilune-cost-usd": usd_decimal(cost)}
        if usage.estimated:
            out["x-perilune-estimated"] = "true"
        return out

    def body(self, result: JSON, served: Served) -> bytes:
        fmt = self.fmt
        if fmt in TEXT_FORMATS:
            text = str(result.get("text", "")) + "\n" if fmt == "text" else subtitles(result, fmt)
            return text.encode()
        out: JSON = result if fmt == "verbose_json" else {k: result[k] for k in ("text", "logprobs") if k in result}
        out["provider"] = served.provider
        seconds = float(served.usage.audio_seconds) if served.usage is not None else 0.0
        out["usage"] = _usage(served, result.get("usage"), audio_seconds=seconds)
        return orjson.dumps(out)


@endpoint("openai", "transcriptions", records=True)
async def transcriptions(ctx: Ctx) -> web.StreamResponse:
    fields, upload = await read_form(ctx.request, ctx.services.settings.max_upload_bytes)
    req = _transcription_request(fields)
    ctx.lifecycle.model_requested = req.model
    if upload is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file",
                             code="missing_required_parameter")
    if req.stream:
        raise Unsupported("Streamed transcription is not supported by perilune yet; omit 'stream'.",
                          param="stream")
    deployments = ctx.services.router.resolve(req.model, TRANSCRIPTIONS, req.provider)
    model = deployments[0].model
    verbose = req.response_format in ("verbose_json", "srt", "vtt") or \
        "timestamp_granularities" in model.supported_parameters
    raw: JSON = {k: (v if len(v) > 1 else v[0]) for k, v in fields.items()}
    raw["file"] = upload
    raw["response_format"] = "verbose_json" if verbose else "json"
    estimated = estimate_audio_seconds(upload)

    def usage_of(result: Result) -> Usage:
        usage = result.usage or Usage()
        if not usage.audio_seconds:
            usage.audio_seconds, usage.estimated = estimated, True
        return usage

    per_minute = model.effective_price.per_audio_minute or Decimal(0)
    call = Call(TRANSCRIPTIONS, req.model, raw, provider=req.provider, generates=False,
                unit_usd=per_minute * (estimated * 2 + 60) / 60, usage=usage_of)
    fmt = req.response_format or "json"
    return await ctx.serve(call, lambda _native: _TranscriptionEncoder(fmt))
