"""OpenAI personality: legacy ``/v1/completions`` (``text_completion`` objects,
stream and not; shapes per CreateCompletionResponse of the OpenAI spec)."""

from __future__ import annotations

from typing import Any

from perilune.tokens import count_tokens

from . import text as T
from .common import Request, Response, StreamPlan, dumps, group_pieces, new_id, now
from .openai import FINGERPRINT, apply_limits, error, parse_stops, stream_error_frame


def _prompts(raw: Any) -> list[str | list[int]]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [raw]
    if isinstance(raw, list):
        return [p if isinstance(p, (str, list)) else str(p) for p in raw]
    return [""]


def _legacy_logprobs(pieces: list[str], k: int, offset: int) -> dict[str, Any]:
    offsets, pos = [], offset
    for p in pieces:
        offsets.append(pos)
        pos += len(p)
    return {
        "tokens": pieces,
        "token_logprobs": [T.token_logprob(p) for p in pieces],
        "top_logprobs": [dict(T.top_logprobs(p, k)) for p in pieces],
        "text_offset": offsets,
    }


def completions(req: Request) -> Response | StreamPlan:
    body = req.json()
    if not isinstance(body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    model = str(body.get("model") or "")
    if not model:
        return error(
            400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    prompts = _prompts(body.get("prompt", ""))
    n = max(int(body.get("n") or 1), 1)
    limit = int(body["max_tokens"]) if body.get("max_tokens") is not None else 16
    stops = parse_stops(body.get("stop"))
    echo = bool(body.get("echo"))
    k_lp = body.get("logprobs")
    prompt_tokens, completion = 0, 0
    results: list[tuple[str, list[str], str]] = []  # prefix text, pieces, finish
    for p in prompts:
        ptxt = p if isinstance(p, str) else ""
        prompt_tokens += count_tokens(p) if isinstance(p, str) else len(p)
        seed = T.seed_of(model, ptxt if isinstance(p, str) else dumps(p).decode())
        for i in range(n):
            pieces, finish = apply_limits(T.generate(seed + i * 7919, req.knobs.output_tokens), stops, limit)
            results.append((ptxt if echo else "", pieces, finish))
            completion += len(pieces)
    use = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    cid, created = new_id("cmpl-"), now()
    base = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }
    headers = [(b"x-request-id", new_id("req_").encode())]
    if not body.get("stream"):
        choices = []
        for i, (pre, pieces, finish) in enumerate(results):
            lp = _legacy_logprobs(pieces, int(k_lp), len(pre)) if k_lp is not None else None
            choices.append(
                {"text": pre + "".join(pieces), "index": i, "logprobs": lp, "finish_reason": finish}
            )
        return Response(
            200, dumps({**base, "choices": choices, "usage": use}), headers=headers, gen_tokens=completion
        )

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    extra = {"usage": None} if include_usage else {}
    per_choice: list[list[tuple[bytes, int]]] = []
    for i, (pre, pieces, _finish) in enumerate(results):
        frames = []
        for j, g in enumerate(group_pieces(pieces, req.knobs.chunks)):
            txt = (pre if j == 0 else "") + "".join(g)
            lp = _legacy_logprobs(g, int(k_lp), 0) if k_lp is not None else None
            ch = {"text": txt, "index": i, "logprobs": lp, "finish_reason": None}
            frames.append((b"data: " + dumps({**base, "choices": [ch], **extra}) + b"\n\n", len(g)))
        per_choice.append(frames)
    content, weights = [], []
    for j in range(max((len(f) for f in per_choice), default=0)):
        for frames in per_choice:
            if j < len(frames):
                content.append(frames[j][0])
                weights.append(frames[j][1])
    tail = [
        b"data: "
        + dumps(
            {**base, "choices": [{"text": "", "index": i, "logprobs": None, "finish_reason": r[2]}], **extra}
        )
        + b"\n\n"
        for i, r in enumerate(results)
    ]
    if include_usage:
        tail.append(b"data: " + dumps({**base, "choices": [], "usage": use}) + b"\n\n")
    tail.append(b"data: [DONE]\n\n")
    return StreamPlan([], content, weights, tail, stream_error_frame(), headers=headers)
