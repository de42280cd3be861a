"""OpenAI personality: the Responses API (``POST /v1/responses``), streamed and not.

Shapes per the OpenAI spec (CreateResponse, Response, ResponseStreamEvent): a Response object with
``output`` items (an assistant ``message`` with ``output_text``, or a ``function_call``), usage with
input/output token details; streams as named SSE events with a ``sequence_number`` on each
(response.created, response.in_progress, output_item.added, content_part.added, output_text.delta...,
output_text.done, content_part.done, output_item.done, or function_call_arguments.delta/done for a
call, then response.completed). Stateless: ``previous_response_id`` is refused like OpenAI refuses an
unknown id (the simulator keeps nothing).
"""

from __future__ import annotations

from typing import Any

from perilune.tokens import split_tokens

from . import text as T
from .common import Request, Response, StreamPlan, dumps, group_pieces, new_id, now
from .openai import apply_limits, chat_prompt_tokens, error, pick_tool


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Input items as chat-like messages, for counting and for choosing a tool."""
    out: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        out.append({"role": "system", "content": body["instructions"]})
    inp = body.get("input")
    if isinstance(inp, str):
        return [*out, {"role": "user", "content": inp}]
    for item in inp if isinstance(inp, list) else ():
        if not isinstance(item, dict):
            continue
        typ = item.get("type") or ("message" if "role" in item else None)
        if typ == "message":
            out.append({"role": item.get("role"), "content": item.get("content")})
        elif typ == "function_call":
            out.append({"role": "assistant", "content": None,
                        "tool_calls": [{"function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})
        elif typ == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "content": output if isinstance(output, (str, list)) else ""})
    return out


def _usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": T.cached_prefix_tokens(prompt), "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def _envelope(body: dict[str, Any], rid: str, model: str, status: str) -> dict[str, Any]:
    text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
    reasoning: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": rid, "object": "response", "created_at": now(), "status": status, "background": False,
        "completed_at": None, "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None, "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False, "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "service_tier": "default", "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0), "text": {"format": text.get("format") or {"type": "text"},
                                                              "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [t for t in body.get("tools") or () if isinstance(t, dict)],
        "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": "disabled",
        "metadata": body.get("metadata") or {},
    }


def _event(payload: dict[str, Any], seq: int) -> bytes:
    payload["sequence_number"] = seq
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def responses(req: Request) -> Response | StreamPlan:
    body = req.json()
    if not isinstance(body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    model = str(body.get("model") or "")
    if not model:
        return error(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if body.get("previous_response_id"):
        return error(404, f"Previous response with id '{body['previous_response_id']}' not found.",
                     param="previous_response_id", code="previous_response_not_found")
    messages = _messages(body)
    if not any(m.get("role") != "system" for m in messages):
        return error(400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    fns = [{"type": "function", "function": t} for t in body.get("tools") or ()
           if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    prompt, last_user, last_role = chat_prompt_tokens(messages, body.get("tools"))
    seed = T.seed_of(model, last_user)
    reasoning = T.REASONING_TOKENS if "reason" in model else 0
    limit = int(body["max_output_tokens"]) - reasoning if body.get("max_output_tokens") else None
    tool = pick_tool(fns, choice, last_user, last_role)
    rid, headers = new_id("resp_"), [(b"x-request-id", new_id("req_").encode())]
    finish = "stop"
    if tool is not None:
        args = dumps(T.value_for_schema(tool.get("parameters") or {})).decode()
        pieces = split_tokens(args)
        item: dict[str, Any] = {"id": new_id("fc_"), "type": "function_call", "status": "completed",
                                "arguments": args, "call_id": new_id("call_"), "name": str(tool.get("name", ""))}
    else:
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            pieces = split_tokens(dumps(T.value_for_schema(fmt.get("schema") or {})).decode())
        else:
            pieces, finish = apply_limits(T.generate(seed, req.knobs.output_tokens), [], limit)
        item = {"id": new_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "".join(pieces)}]}
    completion = len(pieces) + reasoning
    status = "incomplete" if finish == "length" else "completed"
    final = _envelope(body, rid, model, status)
    if status == "incomplete":
        item["status"] = "incomplete"
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        final["completed_at"] = now()
    final["output"] = [item]
    final["usage"] = _usage(prompt, completion, reasoning)
    if not body.get("stream"):
        return Response(200, dumps(final), headers=headers, gen_tokens=completion)
    return _plan(body, rid, model, item, final, pieces, req, headers)


def _plan(body: dict[str, Any], rid: str, model: str, item: dict[str, Any], final: dict[str, Any],
          pieces: list[str], req: Request, headers: list[tuple[bytes, bytes]]) -> StreamPlan:
    started = _envelope(body, rid, model, "in_progress")
    head = [_event({"type": "response.created", "response": started}, 0),
            _event({"type": "response.in_progress", "response": started}, 1)]
    seq = 2
    where = {"item_id": item["id"], "output_index": 0}
    groups = group_pieces(pieces, req.knobs.chunks)
    content: list[bytes] = []
    weights: list[int] = []
    opening = {**item, "status": "in_progress"}
    if item["type"] == "function_call":
        opening["arguments"] = ""
        first = _event({"type": "response.output_item.added", "output_index": 0, "item": opening}, seq)
        seq += 1
        for g in groups:
            content.append(_event({"type": "response.function_call_arguments.delta", **where, "delta": "".join(g)},
                                  seq))
            weights.append(len(g))
            seq += 1
        closing = [{"type": "response.function_call_arguments.done", **where, "name": item["name"],
                    "arguments": item["arguments"]}]
    else:
        opening["content"] = []
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        first = _event({"type": "response.output_item.added", "output_index": 0, "item": opening}, seq)
        first += _event({"type": "response.content_part.added", **where, "content_index": 0, "part": part}, seq + 1)
        seq += 2
        for g in groups:
            content.append(_event({"type": "response.output_text.delta", **where, "content_index": 0,
                                   "delta": "".join(g), "logprobs": []}, seq))
            weights.append(len(g))
            seq += 1
        text = item["content"][0]["text"]
        closing = [{"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
                   {"type": "response.content_part.done", **where, "content_index": 0, "part": item["content"][0]}]
    if content:  # the item opens with its first delta (after TTFT)
        content[0] = first + content[0]
    else:
        head.append(first)
    k = max(len(content) // 2, 1) if content else 0  # where the error-event fault cuts the stream
    failed = {**started, "status": "failed", "error": {"code": "server_error",
                                                        "message": "The model failed to generate a response."}}
    err_seq = 2 + (2 if item["type"] == "message" else 1) + k
    error_frame = (_event({"type": "error", "code": "server_error", "message": "The server had an error while "
                           "processing your request.", "param": None}, err_seq)
                   + _event({"type": "response.failed", "response": failed}, err_seq + 1))
    done = [*closing, {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.incomplete" if final["status"] == "incomplete" else "response.completed",
             "response": final}]
    tail = []
    for ev in done:
        tail.append(_event(ev, seq))
        seq += 1
    return StreamPlan(head, content, weights, tail, error_frame, headers=headers)
