"""Raw ASGI3 application of the provider simulator, knobs/faults, and runner.

Knobs (global via :class:`SimConfig`, per request via headers that win):

=====================  =====================================================
``x-sim-latency-ms``   delay before the response starts (status + headers)
``x-sim-ttft-ms``      streams: delay between the headers and the first
                       generated token (Anthropic's ``message_start`` is sent
                       with the headers); non-streams: added to the latency
``x-sim-tokens-per-s`` stream pacing (0 = unlimited)
``x-sim-chunks``       number of content chunks (default one per token)
``x-sim-chunk-delay-ms`` fixed delay between content chunks (wins over tokens/s)
``x-sim-output-tokens`` natural completion length (default 16)
``x-sim-fault``        ``429`` ``500`` ``503`` ``529`` ``hang`` ``drop``
                       ``malformed`` ``error-event`` ``timeout-first-byte``
``x-sim-cache: read``  Anthropic cache emulation reports reads, not writes
``x-sim-fault-rate``   share of requests that get the fault (default 1)
``x-sim-ttft-jitter-ms`` TTFT uniform in [ttft, ttft + jitter]
``x-sim-slow-tail-rate`` share of requests whose TTFT gets ...
``x-sim-slow-tail-ms``   ... this much more (a slow tail)
``x-sim-context-tokens`` prompts longer than this are refused (400, the
                       provider's "context length" error)
=====================  =====================================================

A non-streamed answer waits as long as its streamed twin would take in total
(ttft + pacing), so both modes cost the same wall time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from . import anthropic, gemini, openai, openai_extra, openai_legacy, openai_responses
from .common import (
    FIRST_BYTE_TIMEOUT_S,
    Knobs,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    SimConfig,
    SimulatedDrop,
    StreamPlan,
    dumps,
    knobs_from_headers,
    send_response,
    send_stream,
    sleep_or_disconnect,
    wait_disconnect,
)

__all__ = ["SimConfig", "create_app", "make_server", "run"]

Handler = Callable[[Request], "Response | StreamPlan"]
ASGIApp = Callable[[Scope, Receive, Send], Any]


@dataclass(frozen=True, slots=True)
class Personality:
    name: str
    error: Callable[[int], Response]
    check_auth: Callable[[Request, str], Response | None]
    event_status: int  # status used for ``error-event`` on non-streamed requests


OPENAI = Personality("openai", lambda s: openai.error(s), openai.check_auth, 500)
ANTHROPIC = Personality("anthropic", lambda s: anthropic.error(s), anthropic.check_auth, 529)
GEMINI = Personality("gemini", lambda s: gemini.error(s), gemini.check_auth, 503)

_EXACT: dict[tuple[str, str], tuple[Personality, Handler]] = {
    ("POST", "/v1/chat/completions"): (OPENAI, openai.chat_completions),
    ("POST", "/v1/completions"): (OPENAI, openai_legacy.completions),
    ("POST", "/v1/responses"): (OPENAI, openai_responses.responses),
    ("POST", "/v1/embeddings"): (OPENAI, openai_extra.embeddings),
    ("POST", "/v1/images/generations"): (OPENAI, openai_extra.images),
    ("POST", "/v1/audio/transcriptions"): (OPENAI, openai_extra.transcriptions),
    ("POST", "/v1/messages"): (ANTHROPIC, anthropic.messages),
    ("POST", "/v1/messages/count_tokens"): (ANTHROPIC, anthropic.count_tokens_endpoint),
    ("GET", "/v1beta/models"): (GEMINI, gemini.models),
}
_GEMINI_VERBS = frozenset(
    {"generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents", "countTokens"}
)
_HEALTH = dumps({"status": "ok"})


def _is_anthropic(headers: dict[bytes, bytes]) -> bool:
    return b"anthropic-version" in headers or (b"x-api-key" in headers and b"authorization" not in headers)


def _route(method: str, path: str, headers: dict[bytes, bytes]) -> tuple[Personality, Handler] | None:
    hit = _EXACT.get((method, path))
    if hit is not None:
        return hit
    if method == "GET":
        if path == "/v1/models":
            return (ANTHROPIC, anthropic.models) if _is_anthropic(headers) else (OPENAI, openai_extra.models)
        if path.startswith("/v1/models/"):
            mid = path[len("/v1/models/") :]
            return OPENAI, lambda r: openai_extra.model(r, mid)
        if path.startswith("/sim/images/"):
            return OPENAI, openai_extra.image_file
    if method == "POST" and (path.startswith("/v1beta/models/") or path.startswith("/v1/models/")):
        tail = path.split("/models/", 1)[1]
        model, sep, verb = tail.rpartition(":")
        if sep and verb in _GEMINI_VERBS:
            return GEMINI, _gemini_handler(verb, model)
    return None


def _gemini_handler(verb: str, model: str) -> Handler:
    def handler(req: Request) -> Response | StreamPlan:
        if verb == "generateContent":
            return gemini.generate_content(req, model, False)
        if verb == "streamGenerateContent":
            return gemini.generate_content(req, model, True)
        if verb == "embedContent":
            return gemini.embed_content(req, model)
        if verb == "batchEmbedContents":
            return gemini.batch_embed_contents(req, model)
        return gemini.count_tokens_endpoint(req, model)

    return handler


def _not_found(method: str, path: str, headers: dict[bytes, bytes]) -> Response:
    if path.startswith("/v1beta"):
        return gemini.error(404, f"Invalid URL ({method} {path}).")
    if _is_anthropic(headers):
        return anthropic.error(404, f"Not found: {method} {path}")
    return openai.error(404, f"Invalid URL ({method} {path})")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(config: SimConfig | None = None) -> ASGIApp:
    """Build the simulator as a raw ASGI3 callable."""
    cfg = config or SimConfig()
    base = Knobs.from_config(cfg)
    rng = Random(cfg.seed)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if path == "/health":
            await send_response(send, Response(200, _HEALTH))
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        chunks: list[bytes] = []
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        route = _route(method, path, headers)
        if route is None:
            await send_response(send, _not_found(method, path, headers))
            return
        person, handler = route
        knobs = knobs_from_headers(base, headers)
        if knobs.random:
            knobs = knobs.draw(rng)
        qs = scope.get("query_string", b"")
        req = Request(method, path, qs.decode("latin-1"), headers, b"".join(chunks), knobs, cfg)
        if cfg.api_key is not None:
            denied = person.check_auth(req, cfg.api_key)
            if denied is not None:
                await send_response(send, denied)
                return
        fault = knobs.fault
        if fault is not None:
            if fault.isdigit():
                if knobs.latency_ms:
                    await asyncio.sleep(knobs.latency_ms / 1000.0)
                await send_response(send, person.error(int(fault)))
                return
            if fault == "hang":
                await wait_disconnect(receive)
                return
            if fault == "timeout-first-byte" and await sleep_or_disconnect(receive, FIRST_BYTE_TIMEOUT_S):
                return
        try:
            result = handler(req)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            result = person.error(400)
            if person is OPENAI:
                result = openai.error(400, f"Invalid request: {exc}")
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000.0)
        if isinstance(result, StreamPlan):
            await send_stream(send, receive, result, knobs)
            return
        if result.status == 200:
            if fault == "error-event":
                result = person.error(person.event_status)
            elif result.gen_tokens and knobs.paced:
                await asyncio.sleep(knobs.generation_delay(result.gen_tokens))
        await send_response(send, result, fault)

    return app


# --------------------------------------------------------------------------- serving


class _DropFilter(logging.Filter):
    """Silence uvicorn's error log for connections the simulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDrop)


_filter_installed = False


def _install_log_filter() -> None:
    global _filter_installed
    if not _filter_installed:
        logging.getLogger("uvicorn.error").addFilter(_DropFilter())
        _filter_installed = True


def make_server(
    host: str = "127.0.0.1", port: int = 8788, config: SimConfig | None = None, **uvicorn_options: Any
) -> Any:
    """A ``uvicorn.Server`` serving the simulator (not started)."""
    import uvicorn

    _install_log_filter()
    options: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "server_header": False,
        "timeout_graceful_shutdown": 2,
    }
    options.update(uvicorn_options)
    return uvicorn.Server(uvicorn.Config(create_app(config), host=host, port=port, **options))


def run(host: str = "127.0.0.1", port: int = 8788, config: SimConfig | None = None) -> None:
    """Serve the simulator with uvicorn (uvloop + httptools) until interrupted."""
    make_server(host, port, config).run()
