"""What every bare proxy of the comparison does per request, so that only the HTTP stack differs.

Non-streamed: read the JSON body, check it names a model, forward the bytes to the upstream, parse the
answer, add one field, answer. Streamed (``"stream": true``): forward, then relay the upstream's SSE
bytes to the client as they arrive, without re-encoding. Run with ``--port`` and ``--upstream``.
"""

from __future__ import annotations

import argparse
import urllib.parse

import orjson

PATH = "/v1/chat/completions"


def args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=19710)
    ap.add_argument("--upstream", default="http://127.0.0.1:19701")
    return ap.parse_args()


def host_port(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    return u.hostname or "127.0.0.1", u.port or 80


def is_stream(body: bytes) -> bool:
    req = orjson.loads(body)
    if not isinstance(req, dict) or not isinstance(req.get("model"), str):
        raise ValueError("model is required")
    return bool(req.get("stream"))


def enrich(answer: bytes) -> bytes:
    obj = orjson.loads(answer)
    obj["proxied_by"] = "bare"
    return orjson.dumps(obj)
