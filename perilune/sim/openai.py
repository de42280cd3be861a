"""OpenAI personality: errors, auth, chat completions and legacy completions.

Wire format follows the OpenAI OpenAPI spec (CreateChatCompletionResponse,
CreateChatCompletionStreamResponse, CreateCompletionResponse, CompletionUsage,
ChatCompletionTokenLogprob, ErrorResponse).
"""

from __future__ import annotations

import re
from typing import Any

from perilune.tokens import count_tokens, split_tokens

from . import text as T
from .common import (
    RETRY_AFTER_S,
    Request,
    Response,
    StreamPlan,
    dumps,
    group_pieces,
    json_response,
    new_id,
    now,
)

FINGERPRINT = "fp_perilune_sim"
_TOOL_WORDS = re.compile(r"\b(?:weather|tools?)\b", re.IGNORECASE)
_OBFUSCATION = "Zq8LmX2vR7tKp4Wn9cYb3HdF6gJs1Ae5"

_DEFAULT_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", None, "Not found."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests (simulated). Please try again in 2s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    529: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


_UNSET = "\x00unset"


def error(
    status: int,
    message: str | None = None,
    *,
    type_: str | None = None,
    code: str | None = _UNSET,
    param: str | None = None,
) -> Response:
    """An OpenAI ``ErrorResponse``; ``code`` defaults per status (pass None for null)."""
    d_type, d_code, d_msg = _DEFAULT_ERRORS.get(status, ("server_error", None, "Error."))
    body = {
        "error": {
            "message": message or d_msg,
            "type": type_ or d_type,
            "param": param,
            "code": d_code if code == _UNSET else code,
        }
    }
    headers = [(b"x-request-id", new_id("req_").encode())]
    if status == 429:
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    return json_response(status, body, headers)


def stream_error_frame() -> bytes:
    err = {"message": _DEFAULT_ERRORS[500][2], "type": "server_error", "param": None, "code": None}
    return b"data: " + dumps({"error": err}) + b"\n\n"


def check_auth(req: Request, key: str) -> Response | None:
    auth = req.header(b"authorization")
    if not auth or not auth.lower().startswith("bearer "):
        return error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    given = auth[7:].strip()
    if given != key:
        shown = given[:3] + "*" * 4 + given[-4:] if len(given) > 8 else "*" * len(given)
        return error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    return None


# --------------------------------------------------------------------------- helpers


def _part_tokens(content: Any) -> tuple[int, str]:
    """Tokens of a message ``content`` (string or parts) and its plain text."""
    if isinstance(content, str):
        return count_tokens(content), content
    total, texts = 0, []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            typ = part.get("type")
            if typ in ("text", "input_text") or (typ is None and "text" in part):
                s = str(part.get("text", ""))
                total += count_tokens(s)
                texts.append(s)
            elif typ == "refusal":
                total += count_tokens(str(part.get("refusal", "")))
            else:  # image_url, input_audio, file, ...
                total += T.IMAGE_TOKENS
    return total, "".join(texts)


def chat_prompt_tokens(messages: list[Any], tools: Any) -> tuple[int, str, str]:
    """Prompt tokens (4 per message + text tokens + 85 per media part + tool
    definitions), the last user text, and the last message role."""
    total, last_user, last_role = 0, "", ""
    for m in messages:
        if not isinstance(m, dict):
            continue
        n, txt = _part_tokens(m.get("content"))
        total += T.PER_MESSAGE_TOKENS + n
        for tc in m.get("tool_calls") or ():
            fn = (tc.get("function") or {}) if isinstance(tc, dict) else {}
            total += count_tokens(str(fn.get("name", ""))) + count_tokens(str(fn.get("arguments", "")))
        last_role = str(m.get("role", ""))
        if last_role == "user":
            last_user = txt
    if tools:
        total += count_tokens(dumps(tools).decode())
    return total, last_user, last_role


def pick_tool(tools: Any, choice: Any, last_user: str, last_role: str) -> dict[str, Any] | None:
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    fns: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if not fns:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((f for f in fns if f.get("name") == name), fns[0])
    if choice == "required":
        return fns[0]
    if last_role in ("tool", "function"):
        return None
    return fns[0] if _TOOL_WORDS.search(last_user) else None


def usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": T.cached_prefix_tokens(prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def apply_limits(pieces: list[str], stops: list[str], limit: int | None) -> tuple[list[str], str]:
    """Honour stop sequences, then the token limit; returns (pieces, finish_reason)."""
    finish = "stop"
    if stops:
        txt = "".join(pieces)
        cut = min((i for i in (txt.find(s) for s in stops if s) if i >= 0), default=-1)
        if cut >= 0:
            pieces = split_tokens(txt[:cut])
    if limit is not None and len(pieces) > limit:
        pieces, finish = pieces[: max(limit, 0)], "length"
    return pieces, finish


def parse_stops(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def _logprob_entries(pieces: list[str], k: int) -> list[dict[str, Any]]:
    out = []
    for p in pieces:
        out.append(
            {
                "token": p,
                "logprob": T.token_logprob(p),
                "bytes": list(p.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in T.top_logprobs(p, k)
                ],
            }
        )
    return out


def _json_output(fmt: Any, seed: int, n: int) -> str | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema", {})
        return dumps(T.value_for_schema(schema)).decode()
    if fmt.get("type") == "json_object":
        return dumps({"answer": T.generate_text(seed, max(n - 8, 1))}).decode()
    return None


# --------------------------------------------------------------------------- chat


def chat_completions(req: Request) -> Response | StreamPlan:
    body = req.json()
    if not isinstance(body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    model = str(body.get("model") or "")
    if not model:
        return error(
            400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    n = max(int(body.get("n") or 1), 1)
    prompt, last_user, last_role = chat_prompt_tokens(messages, body.get("tools"))
    limit_ctx = req.knobs.context_tokens
    if limit_ctx and prompt > limit_ctx:
        return error(
            400,
            f"This model's maximum context length is {limit_ctx} tokens. However, your messages resulted "
            f"in {prompt} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    seed = T.seed_of(model, last_user)
    reasoning = T.REASONING_TOKENS if "reason" in model else 0
    limit_raw = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = int(limit_raw) - reasoning if limit_raw else None
    natural = req.knobs.output_tokens
    stops = parse_stops(body.get("stop"))
    tool = pick_tool(body.get("tools"), body.get("tool_choice"), last_user, last_role)
    json_text = _json_output(body.get("response_format"), seed, natural)
    want_lp = bool(body.get("logprobs"))
    k_top = int(body.get("top_logprobs") or 0)

    choices: list[tuple[list[str], str, dict[str, Any] | None]] = []  # pieces, finish, tool call
    completion = 0
    for i in range(n):
        if tool is not None:
            name = str(tool.get("name", ""))
            args = dumps(T.value_for_schema(tool.get("parameters") or {})).decode()
            call: dict[str, Any] = {
                "id": new_id("call_"),
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            choices.append((split_tokens(args), "tool_calls", call))
            completion += count_tokens(name) + count_tokens(args)
            continue
        pieces = split_tokens(json_text) if json_text is not None else T.generate(seed + i * 7919, natural)
        pieces, finish = apply_limits(pieces, stops, limit)
        choices.append((pieces, finish, None))
        completion += len(pieces)
    completion += reasoning * n
    use = usage(prompt, completion, reasoning * n)
    cid, created = new_id("chatcmpl-"), now()
    headers = [(b"x-request-id", new_id("req_").encode())]

    if not body.get("stream"):
        out = []
        for i, (pieces, finish, tcall) in enumerate(choices):
            msg: dict[str, Any] = {"role": "assistant", "content": None if tcall else "".join(pieces)}
            if tcall:
                msg["tool_calls"] = [tcall]
            msg["refusal"] = None
            msg["annotations"] = []
            lp = (
                {"content": _logprob_entries(pieces, k_top), "refusal": None}
                if want_lp and not tcall
                else None
            )
            out.append({"index": i, "message": msg, "logprobs": lp, "finish_reason": finish})
        obj = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": out,
            "usage": use,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        return Response(200, dumps(obj), headers=headers, gen_tokens=completion)

    opts = body.get("stream_options") or {}
    include_usage = bool(opts.get("include_usage"))
    obfuscate = opts.get("include_obfuscation", True) is not False
    prefix = (
        b'data: {"id":"'
        + cid.encode()
        + b'","object":"chat.completion.chunk","created":'
        + str(created).encode()
        + b',"model":'
        + dumps(model)
        + b',"service_tier":"default","system_fingerprint":"'
        + FINGERPRINT.encode()
        + b'","choices":['
    )
    suffix = b',"usage":null' if include_usage else b""

    def frame(choice: dict[str, Any], size: int) -> bytes:
        obf = b',"obfuscation":"' + _OBFUSCATION[: 4 + (size * 5) % 24].encode() + b'"' if obfuscate else b""
        return prefix + dumps(choice) + b"]" + suffix + obf + b"}\n\n"

    per_choice: list[list[tuple[bytes, int]]] = []
    for i, (pieces, _finish, tcall) in enumerate(choices):
        groups = group_pieces(pieces, req.knobs.chunks)
        frames: list[tuple[bytes, int]] = []
        if tcall:
            fn = tcall["function"]
            first = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": tcall["id"],
                        "type": "function",
                        "function": {"name": fn["name"], "arguments": ""},
                    }
                ],
                "refusal": None,
            }
            frames.append(
                (frame({"index": i, "delta": first, "logprobs": None, "finish_reason": None}, 0), 0)
            )
            for g in groups:
                d = {"tool_calls": [{"index": 0, "function": {"arguments": "".join(g)}}]}
                frames.append(
                    (frame({"index": i, "delta": d, "logprobs": None, "finish_reason": None}, len(g)), len(g))
                )
        else:
            role = {"role": "assistant", "content": "", "refusal": None}
            frames.append((frame({"index": i, "delta": role, "logprobs": None, "finish_reason": None}, 0), 0))
            for g in groups:
                txt = "".join(g)
                lp = {"content": _logprob_entries(g, k_top), "refusal": None} if want_lp else None
                ch = {"index": i, "delta": {"content": txt}, "logprobs": lp, "finish_reason": None}
                frames.append((frame(ch, len(txt)), len(g)))
        # the role chunk travels with the first generated chunk (both after TTFT)
        if len(frames) > 1:
            frames[1] = (frames[0][0] + frames[1][0], frames[1][1])
            del frames[0]
        per_choice.append(frames)

    content: list[bytes] = []
    weights: list[int] = []
    for j in range(max(len(f) for f in per_choice)):
        for frames in per_choice:
            if j < len(frames):
                content.append(frames[j][0])
                weights.append(frames[j][1])
    tail = [
        frame({"index": i, "delta": {}, "logprobs": None, "finish_reason": c[1]}, 0)
        for i, c in enumerate(choices)
    ]
    if include_usage:
        tail.append(
            prefix
            + b"]"
            + b',"usage":'
            + dumps(use)
            + (b',"obfuscation":""' if obfuscate else b"")
            + b"}\n\n"
        )
    tail.append(b"data: [DONE]\n\n")
    return StreamPlan([], content, weights, tail, stream_error_frame(), headers=headers)
