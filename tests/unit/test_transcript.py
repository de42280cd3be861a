"""Log detail's transcript: stored payloads of either dialect become typed turns and parts."""

from __future__ import annotations

from perilune.dashboard.transcript import Part, Turn, conversation, response_output


def kinds(turns: list[Turn]) -> list[tuple[str, list[str]]]:
    return [(t.role, [p.kind for p in t.parts]) for t in turns]


def test_anthropic_request_with_system_tools_images_and_thinking() -> None:
    req = {"model": "claude", "system": [{"type": "text", "text": "Be brief."}], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "Need a tool."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                      "content": [{"type": "text", "text": "timeout"}]}]}]}
    turns = conversation(req)
    assert kinds(turns) == [("system", ["text"]), ("user", ["text", "image"]), ("assistant", ["thinking", "tool_call"]),
                            ("user", ["tool_result"])]
    assert turns[0].parts[0].text == "Be brief."
    assert turns[1].parts[1].src == "data:image/png;base64,iVBORw0KGgo="
    call = turns[2].parts[1]
    assert (call.name, call.ref, call.text) == ("get_weather", "toolu_1", '{\n  "city": "Paris"\n}')
    assert turns[3].parts[0] == Part("tool_result", "timeout", ref="toolu_1", failed=True)
    assert conversation({"system": "Plain system", "messages": [{"role": "user", "content": "hi"}]})[0].parts[0].text \
        == "Plain system"


def test_anthropic_response_message() -> None:
    resp = {"type": "message", "role": "assistant", "stop_reason": "tool_use", "content": [
        {"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
    [turn] = response_output(resp)
    assert (turn.role, turn.note, [p.kind for p in turn.parts]) == ("assistant", "tool_use", ["text", "tool_call"])


def test_openai_request_and_response() -> None:
    req = {"messages": [{"role": "system", "content": "sys"},
                        {"role": "user", "content": [{"type": "text", "text": "look"},
                                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                        {"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    turns = conversation(req)
    assert kinds(turns) == [("system", ["text"]), ("user", ["text", "image"]), ("assistant", ["tool_call"]),
                            ("tool", ["tool_result"])]
    assert turns[1].parts[1].src == "" and turns[1].parts[1].text == "https://x/y.png"  # remote: never loaded
    assert turns[3].parts[0].text == "42" and turns[3].parts[0].ref == "c1"
    resp = {"choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi", "reasoning_content": "hmm"}}]}
    [turn] = response_output(resp)
    assert (turn.role, turn.note, [p.kind for p in turn.parts]) == ("choice 0", "stop", ["thinking", "text"])


def test_other_shapes_and_junk() -> None:
    assert kinds(response_output({"object": "list", "data": [{"embedding": [0.1, 0.2]}]})) == [("embeddings", ["text"])]
    imgs = response_output({"created": 1, "data": [{"b64_json": "AAAA", "revised_prompt": "a cat"}]})
    assert kinds(imgs) == [("images", ["image", "note"])] and imgs[0].parts[0].src.startswith("data:image/png")
    assert kinds(response_output({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})) == [
        ("error", ["error"])]
    assert kinds(conversation({"prompt": "Once upon"})) == [("prompt", ["text"])]
    assert conversation(None) == [] and conversation({"messages": [1, None, {"content": 5}]})[0].role == "?"
    assert response_output("not json") == [Turn("response", [Part("text", "not json")])]
    assert response_output({"choices": [None, {"text": "legacy"}]})[0].parts[0].text == "legacy"


def test_responses_api_items() -> None:
    req = {"model": "m", "instructions": "Be terse.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "2+2?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "calc", "arguments": "{\"x\": 2}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "4"}]}
    assert kinds(conversation(req)) == [("system", ["text"]), ("user", ["text"]), ("assistant", ["tool_call"]),
                                        ("tool", ["tool_result"])]
    resp = {"object": "response", "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "add"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4"}]}]}
    turns = response_output(resp)
    assert kinds(turns) == [("assistant", ["thinking"]), ("assistant", ["text"])] and turns[1].parts[0].text == "4"
    assert kinds(conversation({"input": "plain"})) == [("input", ["text"])]
