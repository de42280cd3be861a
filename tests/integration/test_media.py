"""Images and audio transcriptions with the official openai SDK, through perilune to the simulator:
per-image and per-audio-minute cost, every transcription response format, upload limits."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from perilune.api.media import estimate_audio_seconds, subtitles, wav_seconds
from perilune.providers.base import Upload
from perilune.tokens import count_tokens
from tests.conftest import Gateway, StartGateway

MAX_UPLOAD = 100_000
CONFIG = f"""
simulator = "never"
log_level = "warning"
max_upload_bytes = {MAX_UPLOAD}

[[providers]]
name = "sim"
base_url = "{{sim_url}}/v1"
forward_headers = ["x-sim-*"]

[[providers]]
name = "openai"
base_url = "{{sim_url}}/v1"
api_key_env = "TEST_OPENAI_KEY"
forward_headers = ["x-sim-*"]
"""
PER_IMAGE = Decimal("0.04")  # sim-image
PER_MINUTE = Decimal("0.006")  # sim-whisper and gpt-4o-transcribe
AUDIO = bytes(range(256)) * 195 + b"\x01\x02"  # 49_922 bytes: 3.12 s in the simulator (16000 B/s)
SECONDS = Decimal("3.12")
M = Decimal(1_000_000)


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)


def d(value: Any) -> Decimal:
    return Decimal(str(value))


# ---- images -------------------------------------------------------------------------------------

def test_images_url(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model="sim-image", prompt="a lighthouse at dusk", n=2,
                                                   size="256x256", response_format="url")
    body = raw.http_response.json()
    assert raw.headers["x-request-id"].startswith("req_")
    r = raw.parse()
    assert len(r.data) == 2
    assert all((i.url or "").startswith("http://") and i.b64_json is None for i in r.data)
    assert body["provider"] == "sim"
    u = body["usage"]
    assert u["images"] == 2
    assert d(u["unit_cost_usd"]) == d(u["total_cost_usd"]) == 2 * PER_IMAGE
    assert u["input_cost_usd"] == u["output_cost_usd"] == u["cache_input_cost_usd"] == "0"
    assert "prompt_tokens" not in u and "estimated" not in u and u["latency_ms"] > 0


def test_images_b64_json(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model="sim-image", prompt="a cat", n=3,
                                                   response_format="b64_json")
    r = raw.parse()
    assert [base64.b64decode(i.b64_json or "")[:8] for i in r.data] == [b"\x89PNG\r\n\x1a\n"] * 3
    u = raw.http_response.json()["usage"]
    assert u["images"] == 3 and d(u["total_cost_usd"]) == 3 * PER_IMAGE
    one = client.images.with_raw_response.generate(model="sim-image", prompt="a cat",
                                                   response_format="b64_json")
    assert d(one.http_response.json()["usage"]["total_cost_usd"]) == PER_IMAGE


def test_images_token_priced_model(client: openai.OpenAI) -> None:
    """gpt-image models are token-billed (no per-image price): the upstream's token usage is priced."""
    prompt = "a red bicycle"
    raw = client.images.with_raw_response.generate(model="gpt-image-2", prompt=prompt, n=2, quality="low")
    body = raw.http_response.json()
    u = body["usage"]
    assert body["provider"] == "openai" and u["images"] == 2
    text, out = count_tokens(prompt), 272 * 2  # the simulator's low-quality 1024x1024 image tokens
    assert u["input_tokens"] == text and u["output_tokens"] == out
    assert d(u["input_cost_usd"]) == text * Decimal("5.00") / M
    assert d(u["output_cost_usd"]) == out * Decimal("30.00") / M
    assert d(u["total_cost_usd"]) == text * Decimal("5.00") / M + out * Decimal("30.00") / M


def test_images_validation(client: openai.OpenAI, gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="sim-image", prompt="x", n=11)
    assert e.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="sim-gpt", prompt="x")
    assert e.value.body["code"] == "wrong_model_kind"  # type: ignore[index]
    r = httpx.post(gw.v1 + "/images/generations", headers={"Authorization": f"Bearer {gw.key}"},
                   json={"prompt": "no model"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_images_upstream_failure(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        client.images.generate(model="sim-image", prompt="x", extra_headers={"x-sim-fault": "429"})
    assert e.value.response.headers["retry-after"] == "2"


# ---- transcriptions -----------------------------------------------------------------------------

def sim_direct(sim_url: str, fmt: str, model: str = "sim-whisper") -> httpx.Response:
    return httpx.post(sim_url + "/v1/audio/transcriptions", files={"file": ("talk.mp3", AUDIO, "audio/mpeg")},
                      data={"model": model, "response_format": fmt})


def assert_audio_cost(headers: Any, seconds: Decimal, *, estimated: bool = False) -> None:
    assert d(headers["x-perilune-audio-seconds"]) == seconds
    assert d(headers["x-perilune-cost-usd"]) == seconds * PER_MINUTE / 60
    assert headers["x-perilune-cost-usd"] == format(d(headers["x-perilune-cost-usd"]).normalize(), "f")  # one shape
    assert headers.get("x-perilune-estimated") == ("true" if estimated else None)


def test_transcription_json(client: openai.OpenAI, sim_url: str) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(model="sim-whisper",
                                                               file=("talk.mp3", AUDIO, "audio/mpeg"))
    t = raw.parse()
    assert t.text == sim_direct(sim_url, "json").json()["text"]
    body = raw.http_response.json()
    assert set(body) == {"text", "provider", "usage"} and body["provider"] == "sim"
    u = body["usage"]
    assert d(u["audio_seconds"]) == SECONDS
    assert d(u["unit_cost_usd"]) == d(u["total_cost_usd"]) == SECONDS * PER_MINUTE / 60 == Decimal("0.000312")
    assert "estimated" not in u
    assert_audio_cost(raw.headers, SECONDS)


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_transcription_text_formats(client: openai.OpenAI, gw: Gateway, sim_url: str, fmt: str) -> None:
    """Rendered by perilune from the upstream's verbose_json, identical to what the upstream would send."""
    out = client.audio.transcriptions.create(model="sim-whisper", file=("talk.mp3", AUDIO, "audio/mpeg"),
                                             response_format=fmt)  # type: ignore[call-overload]
    direct = sim_direct(sim_url, fmt).text
    assert out == direct
    if fmt == "vtt":
        assert direct.startswith("WEBVTT\n\n00:00:00.000 --> ")
    r = httpx.post(gw.v1 + "/audio/transcriptions", headers={"Authorization": f"Bearer {gw.key}"},
                   files={"file": ("talk.mp3", AUDIO, "audio/mpeg")},
                   data={"model": "sim-whisper", "response_format": fmt})
    assert r.status_code == 200 and r.text == direct
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-perilune-provider"] == "sim"
    assert_audio_cost(r.headers, SECONDS)


def test_transcription_verbose_json_with_words(client: openai.OpenAI, sim_url: str) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="sim-whisper", file=("talk.mp3", AUDIO, "audio/mpeg"), response_format="verbose_json",
        timestamp_granularities=["word", "segment"], language="fr", prompt="A talk", temperature=0.2)
    v = raw.parse()
    assert v.duration == 3.12 and v.language == "french" and v.words and v.segments
    body = raw.http_response.json()
    direct = sim_direct(sim_url, "verbose_json").json()
    assert body["text"] == direct["text"] and body["segments"] == direct["segments"]
    assert body["usage"]["type"] == "duration" and body["usage"]["seconds"] == 4  # the upstream's own
    assert d(body["usage"]["total_cost_usd"]) == SECONDS * PER_MINUTE / 60
    assert_audio_cost(raw.headers, SECONDS)


def test_transcription_without_duration_is_estimated(client: openai.OpenAI) -> None:
    """gpt-4o-transcribe answers json with token usage only: the duration is estimated from the upload."""
    raw = client.audio.transcriptions.with_raw_response.create(model="gpt-4o-transcribe",
                                                               file=("talk.mp3", AUDIO, "audio/mpeg"))
    body = raw.http_response.json()
    assert body["provider"] == "openai" and body["text"]
    u = body["usage"]
    seconds = Decimal(len(AUDIO)) / 16000
    assert u["estimated"] is True and u["type"] == "tokens" and d(u["audio_seconds"]) == seconds
    assert d(u["total_cost_usd"]) == (seconds * PER_MINUTE / 60).quantize(Decimal("1e-12"))
    assert raw.headers["x-perilune-estimated"] == "true"
    text = client.audio.transcriptions.create(model="gpt-4o-transcribe", response_format="text",
                                              file=("talk.mp3", AUDIO, "audio/mpeg"))
    assert text == body["text"] + "\n"


def test_transcription_limits_and_validation(client: openai.OpenAI, gw: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model="sim-whisper", file=("big.mp3", b"\0" * (MAX_UPLOAD + 1)))
    assert e.value.status_code == 413 and e.value.body["code"] == "request_too_large"  # type: ignore[index]
    h = {"Authorization": f"Bearer {gw.key}"}
    url = gw.v1 + "/audio/transcriptions"
    r = httpx.post(url, headers=h, data={"model": "sim-whisper"}, files={"audio": ("a.mp3", AUDIO)})
    assert r.status_code == 400 and r.json()["error"]["param"] == "audio"
    r = httpx.post(url, headers=h, data={"model": "sim-whisper", "response_format": "json"},
                   files={"other": (None, b"v")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(url, headers=h, files={"file": ("a.mp3", AUDIO)}, data={"model": "sim-whisper",
                                                                          "response_format": "mp4"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = httpx.post(url, headers=h, files={"file": ("a.mp3", AUDIO)}, data={"model": "sim-whisper",
                                                                          "temperature": "warm"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    r = httpx.post(url, headers=h, json={"model": "sim-whisper"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_content_type"
    with pytest.raises(openai.BadRequestError) as b:
        client.audio.transcriptions.create(model="sim-image", file=("a.mp3", AUDIO))
    assert b.value.body["code"] == "wrong_model_kind"  # type: ignore[index]


def test_transcription_upstream_failures(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.audio.transcriptions.create(model="sim-whisper", file=("a.mp3", AUDIO),
                                           extra_headers={"x-sim-fault": "500"})
    assert e.value.status_code == 502


# ---- helpers (no I/O) ---------------------------------------------------------------------------

def wav(seconds_of_frames: int, rate: int = 16000, channels: int = 1, extra_chunk: bool = True) -> bytes:
    data = b"\0\0" * rate * channels * seconds_of_frames
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        chunks += b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd size: padded
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_wav_duration_and_estimates() -> None:
    assert wav_seconds(wav(2)) == Decimal("2.000")
    assert wav_seconds(wav(1, rate=44100, channels=2, extra_chunk=False)) == Decimal("1.000")
    assert wav_seconds(b"ID3" + b"\0" * 100) is None and wav_seconds(b"RIFF") is None
    assert estimate_audio_seconds(Upload("a.wav", "audio/wav", wav(3))) == Decimal("3.000")
    assert estimate_audio_seconds(Upload("a.mp3", "audio/mpeg", b"\0" * 24000)) == Decimal("1.5")


def test_subtitles_from_verbose_json() -> None:
    body = {"duration": 3.5, "text": " Hello there. General.", "segments": [
        {"start": 0.0, "end": 1.25, "text": " Hello there."},
        {"start": 1.25, "end": 3661.5, "text": " General."}]}
    assert subtitles(body, "srt") == ("1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n"
                                      "2\n00:00:01,250 --> 01:01:01,500\nGeneral.\n\n")
    assert subtitles(body, "vtt") == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n"
                                      "00:00:01.250 --> 01:01:01.500\nGeneral.\n\n")
    assert subtitles({"duration": 2, "text": "Hi"}, "srt") == "1\n00:00:00,000 --> 00:00:02,000\nHi\n\n"
    assert json.dumps(body)  # the input is left as it was
