"""OpenAI personality, non-chat endpoints: embeddings, images, audio
transcriptions and models (shapes per the OpenAI OpenAPI spec:
CreateEmbeddingResponse, ImagesResponse/ImagesUsage,
CreateTranscriptionResponseJson/VerboseJson, ListModelsResponse/Model).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from typing import Any

from perilune.tokens import count_tokens

from . import text as T
from . import vectors
from .common import Request, Response, dumps, json_response, new_id, now
from .openai import error

#: Audio duration emulation: 16000 bytes of upload = 1 second of audio.
AUDIO_BYTES_PER_SECOND = 16000
#: Transcript length: 3 tokens per second of audio (at least 1).
TRANSCRIPT_TOKENS_PER_SECOND = 3
#: gpt-4o-transcribe style token usage: 10 audio tokens per second.
AUDIO_TOKENS_PER_SECOND = 10

MODELS_CREATED = 1_700_000_000
#: The most dimensions an embedding may have here (a bigger request is refused, never allocated).
MAX_DIMENSIONS = 16384
SIM_MODELS = (
    "sim-chat",
    "sim-reasoning",
    "sim-embedding-small",
    "sim-embedding-large",
    "sim-image",
    "whisper-1",
)


# --------------------------------------------------------------------------- embeddings


def embeddings(req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or "input" not in body:
        return error(
            400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    model = str(body.get("model") or "")
    raw = body["input"]
    items: list[str | list[int]]
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = [x if isinstance(x, (str, list)) else str(x) for x in raw]
    else:
        return error(400, "'input' must be a non-empty string or array.", param="input", code=None)
    dims = body.get("dimensions") or (3072 if "large" in model else 1536)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_DIMENSIONS:
        return error(400, f"'dimensions' must be an integer between 1 and {MAX_DIMENSIONS}.", param="dimensions",
                     code=None)
    b64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for i, item in enumerate(items):
        if isinstance(item, str):
            tokens += count_tokens(item)
            seed = vectors.vector_seed(item.encode())
        else:
            tokens += len(item)
            seed = vectors.vector_seed(dumps(item))
        emb: Any = vectors.embedding_b64(seed, dims) if b64 else vectors.embedding(seed, dims)
        data.append({"object": "embedding", "index": i, "embedding": emb})
    obj = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(200, obj, [(b"x-request-id", new_id("req_").encode())])


# --------------------------------------------------------------------------- images


def _png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x5b\x8c\xd6\xff" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


PNG = _png()
import base64 as _b64  # noqa: E402

PNG_B64 = _b64.b64encode(PNG).decode()

# gpt-image output tokens per image, by quality, for square / non-square sizes
_IMAGE_TOKENS = {"low": (272, 408), "medium": (1056, 1584), "high": (4160, 6240)}


def images(req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not body.get("prompt"):
        return error(
            400, "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
        )
    model = str(body.get("model") or "dall-e-2")
    n = int(body.get("n") or 1)
    if not 1 <= n <= 10:
        return error(
            400, f"{n} is not a valid value for 'n': must be between 1 and 10.", param="n", code=None
        )
    gpt_image = model.startswith("gpt-image") or "gpt-image" in model
    size = str(body.get("size") or "1024x1024")
    out: dict[str, Any] = {"created": now()}
    if gpt_image or body.get("response_format") == "b64_json":
        item: dict[str, Any] = {"b64_json": PNG_B64}
    else:
        host = req.header(b"host") or "localhost"
        item = {"url": f"http://{host}/sim/images/{new_id('img-')}.png"}
    if "dall-e-3" in model:
        item["revised_prompt"] = str(body["prompt"])
    out["data"] = [dict(item) for _ in range(n)]
    if gpt_image:
        quality = str(body.get("quality") or "auto")
        quality = "medium" if quality not in _IMAGE_TOKENS else quality
        size = "1024x1024" if size == "auto" else size
        per = _IMAGE_TOKENS[quality][0 if size == "1024x1024" else 1]
        text_tokens = count_tokens(str(body["prompt"]))
        out.update(
            background=str(body.get("background") or "opaque")
            if body.get("background") != "auto"
            else "opaque",
            output_format=str(body.get("output_format") or "png"),
            size=size,
            quality=quality,
            usage={
                "total_tokens": text_tokens + per * n,
                "input_tokens": text_tokens,
                "output_tokens": per * n,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
            },
        )
    return json_response(200, out, [(b"x-request-id", new_id("req_").encode())])


def image_file(req: Request) -> Response:
    return Response(200, PNG, content_type=b"image/png")


# --------------------------------------------------------------------------- audio

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_DISPO = re.compile(r'(\w+)="([^"]*)"')
_LANGS = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian", "ja": "japanese"}


def parse_multipart(body: bytes, content_type: str) -> dict[str, list[tuple[bytes, str | None]]]:
    """Minimal multipart/form-data parser: field name -> [(data, filename)]."""
    m = _BOUNDARY.search(content_type)
    fields: dict[str, list[tuple[bytes, str | None]]] = {}
    if not m:
        return fields
    delim = b"--" + m.group(1).encode("latin-1")
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        attrs: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                attrs = dict(_DISPO.findall(line))
        if "name" in attrs:
            fields.setdefault(attrs["name"], []).append((data, attrs.get("filename")))
    return fields


def _ts(sec: float, sep: str) -> str:
    ms = round(sec * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def transcriptions(req: Request) -> Response:
    fields = parse_multipart(req.body, req.header(b"content-type") or "")
    if "file" not in fields:
        return error(
            400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )

    def field(name: str, default: str = "") -> str:
        v = fields.get(name)
        return v[0][0].decode("utf-8", "replace") if v else default

    audio = fields["file"][0][0]
    model = field("model", "whisper-1")
    fmt = field("response_format", "json")
    duration = round(len(audio) / AUDIO_BYTES_PER_SECOND, 2)
    ntok = max(1, math.ceil(duration * TRANSCRIPT_TOKENS_PER_SECOND))
    pieces = T.generate(zlib.crc32(audio) ^ len(audio), ntok)
    text = "".join(pieces)
    seconds = math.ceil(duration) if duration > 0 else 0
    segs = []
    for i in range(0, ntok, 24):
        chunk = pieces[i : i + 24]
        start, end = duration * i / ntok, duration * min(i + 24, ntok) / ntok
        seg_text = "".join(chunk)
        segs.append((start, end, seg_text if seg_text.startswith(" ") else " " + seg_text, chunk))
    if fmt == "text":
        return Response(200, (text + "\n").encode(), content_type=b"text/plain; charset=utf-8")
    if fmt in ("srt", "vtt"):
        sep = "," if fmt == "srt" else "."
        lines = [] if fmt == "srt" else ["WEBVTT", ""]
        for i, (start, end, seg_text, _c) in enumerate(segs):
            if fmt == "srt":
                lines.append(str(i + 1))
            lines += [f"{_ts(start, sep)} --> {_ts(end, sep)}", seg_text.strip(), ""]
        return Response(200, "\n".join(lines).encode() + b"\n", content_type=b"text/plain; charset=utf-8")
    if fmt == "verbose_json":
        lang = field("language", "en")
        obj: dict[str, Any] = {
            "task": "transcribe",
            "language": _LANGS.get(lang, lang),
            "duration": duration,
            "text": text,
            "segments": [
                {
                    "id": i,
                    "seek": 0,
                    "start": round(start, 3),
                    "end": round(end, 3),
                    "text": seg_text,
                    "tokens": [50364 + zlib.crc32(p.encode()) % 10000 for p in chunk],
                    "temperature": 0.0,
                    "avg_logprob": -0.25,
                    "compression_ratio": 1.2,
                    "no_speech_prob": 0.01,
                }
                for i, (start, end, seg_text, chunk) in enumerate(segs)
            ],
            "usage": {"type": "duration", "seconds": seconds},
        }
        grans = [v[0].decode() for v in fields.get("timestamp_granularities[]", [])]
        if "word" in grans:
            obj["words"] = [
                {
                    "word": p.strip(),
                    "start": round(duration * j / ntok, 3),
                    "end": round(duration * (j + 1) / ntok, 3),
                }
                for j, p in enumerate(pieces)
                if p.strip() and p.strip()[0].isalnum()
            ]
        return json_response(200, obj)
    obj = {"text": text}
    if model.startswith("whisper"):
        obj["usage"] = {"type": "duration", "seconds": seconds}
    else:
        prompt_tokens = count_tokens(field("prompt"))
        audio_tokens = math.ceil(duration * AUDIO_TOKENS_PER_SECOND)
        obj["usage"] = {
            "type": "tokens",
            "input_tokens": audio_tokens + prompt_tokens,
            "input_token_details": {"text_tokens": prompt_tokens, "audio_tokens": audio_tokens},
            "output_tokens": ntok,
            "total_tokens": audio_tokens + prompt_tokens + ntok,
        }
    return json_response(200, obj)


# --------------------------------------------------------------------------- models


def models(req: Request) -> Response:
    data = [
        {"id": m, "object": "model", "created": MODELS_CREATED, "owned_by": "perilune-sim"}
        for m in SIM_MODELS
    ]
    return json_response(200, {"object": "list", "data": data})


def model(req: Request, model_id: str) -> Response:
    return json_response(
        200, {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": "perilune-sim"}
    )
