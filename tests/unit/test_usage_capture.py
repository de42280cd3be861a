"""Payload capture (stream assembly, size caps), metrics from usage rows, JSON logs."""

from __future__ import annotations

import dataclasses
import io
import logging

import orjson

from perilune.accounting.capture import StreamCapture, payload_row
from perilune.logs import REQUEST_ID, JsonFormatter
from perilune.metrics import Metrics, RecorderStats
from perilune.schema.canonical import UsageEvent


def chunk(choices: list[dict[str, object]], **kw: object) -> dict[str, object]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices,
            **kw}


def test_stream_capture_assembles_content_tool_calls_and_choices() -> None:
    c = StreamCapture()
    c.feed(chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}},
                  {"index": 1, "delta": {"role": "assistant", "content": "B"}}]))
    c.feed(chunk([{"index": 0, "delta": {"content": "Hel"}}]))
    c.feed(chunk([{"index": 0, "delta": {"content": "lo", "reasoning_content": "think"}}]))
    c.feed(chunk([{"index": 1, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_", "arguments": ""}}]}}]))
    c.feed(chunk([{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"name": "weather",
                                                                                  "arguments": '{"city"'}}]}}]))
    c.feed(chunk([{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]}}]))
    c.feed(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"},
                  {"index": 1, "delta": {}, "finish_reason": "tool_calls"}]))
    assert c.result() == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m", "streamed": True,
        "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": "Hello", "reasoning_content": "think"}},
            {"index": 1, "finish_reason": "tool_calls",
             "message": {"role": "assistant", "content": "B", "tool_calls": [
                 {"id": "call_1", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}},
        ]}


def test_stream_capture_legacy_completions() -> None:
    c = StreamCapture()
    for t in ("Once", " upon"):
        c.feed({"id": "cmpl-1", "object": "text_completion", "created": 2, "model": "m",
                "choices": [{"index": 0, "text": t, "finish_reason": None}]})
    c.feed({"id": "cmpl-1", "object": "text_completion", "created": 2, "model": "m",
            "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    assert c.result()["choices"] == [{"index": 0, "text": "Once upon", "finish_reason": "length"}]
    assert c.result()["object"] == "text_completion"


def test_payload_row_caps_size_and_records_errors() -> None:
    o = UsageEvent("req_1", 1000.0, "openai", "chat", "m", "", "", 502, "upstream_unavailable", None, None, None,
                   None, False, (), None, None, None, None, "app", capture=True,
                   payload_request={"messages": [{"role": "user", "content": "é" * 5000}]})
    row = payload_row(o, 1024)
    req = orjson.loads(row["request"])
    assert req["truncated"] is True and req["size_bytes"] > 10_000 and len(req["preview"].encode()) <= 1024
    assert orjson.loads(row["response"]) == {"error": {"status": 502, "type": "upstream_unavailable"}}
    o = dataclasses.replace(o, payload_response={"error": {"message": "upstream said no", "type": "server_error"}})
    assert orjson.loads(payload_row(o, 1024)["response"])["error"]["message"] == "upstream said no"
    assert (row["id"], row["created_at"]) == ("req_1", 1000.0)


def test_metrics_from_rows_with_bounded_labels() -> None:
    m = Metrics()
    m.watch_recorder(lambda: RecorderStats(queue_depth=3, spool_bytes=1234, written=10, spooled=2, replayed=1,
                                           db_up=False))
    base = {"model_served": "sim-gpt", "provider": "sim", "status": 200, "error_type": None,
            "latency_ms": 120.0, "ttft_ms": 30.0, "input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 2,
            "cache_write_tokens": 0, "reasoning_tokens": 1, "total_cost_pusd": 2_500_000_000, "app": "secret-app",
            "key_id": "key_secret", "id": "req_x"}
    m.observe_rows([base, base, {**base, "model_served": "", "provider": "", "status": 404,
                                 "error_type": "model_not_found", "model_requested": "made-up-model",
                                 "latency_ms": 1.0, "ttft_ms": None, "input_tokens": None,
                                 "output_tokens": None, "total_cost_pusd": None}])
    text = m.render().decode()
    assert 'perilune_requests_total{model="sim-gpt",provider="sim",status="200"} 2.0' in text
    assert 'perilune_requests_total{model="unknown",provider="none",status="404"} 1.0' in text
    assert 'perilune_request_errors_total{error_type="model_not_found",model="unknown",provider="none"} 1.0' in text
    assert 'perilune_tokens_total{kind="input",model="sim-gpt",provider="sim"} 20.0' in text
    assert 'perilune_tokens_total{kind="cache_read",model="sim-gpt",provider="sim"} 4.0' in text
    assert 'perilune_cost_usd_total{model="sim-gpt",provider="sim"} 0.005' in text
    assert 'perilune_request_latency_seconds_count{model="sim-gpt",provider="sim"} 2.0' in text
    assert 'perilune_ttft_seconds_bucket{le="0.05",model="sim-gpt",provider="sim"} 2.0' in text
    assert "perilune_usage_queue_depth 3.0" in text and "perilune_usage_spool_bytes 1234.0" in text
    assert "perilune_usage_database_up 0.0" in text and "perilune_usage_records_written_total 10.0" in text
    for secret in ("secret-app", "key_secret", "made-up-model", "req_x", "_created"):
        assert secret not in text


def test_json_logs_carry_request_id_and_hide_keys() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("perilune.test.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    token = REQUEST_ID.set("req_abc")
    try:
        log.info('client sent "Bearer pk_live_0123456789abcdefghijklmnop" and sk-proj-abcdefghijkl', extra={
            "fields": {"status": 200, "msg": "cannot override"}})
        try:
            raise ValueError("with pk_admin_test_secret_for_the_suite_only inside")
        except ValueError:
            log.exception("boom")
    finally:
        REQUEST_ID.reset(token)
        log.removeHandler(handler)
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "req_abc" and first["status"] == 200 and first["level"] == "INFO"
    assert first["msg"] == 'client sent "[redacted]" and [redacted]'
    assert first["logger"] == "perilune.test.json" and first["t"].endswith("Z")
    assert "pk_admin" not in second["exc"] and "ValueError" in second["exc"]


def test_spans_from_usage_rows() -> None:
    from perilune.tracing import span_sink

    made: list[dict[str, object]] = []

    class Span:
        def __init__(self, name: str, start: int, attrs: dict[str, object]) -> None:
            self.record: dict[str, object] = {"name": name, "start": start, "attrs": attrs}
            made.append(self.record)

        def end(self, end_time: int) -> None:
            self.record["end"] = end_time

    class Tracer:
        def start_span(self, name: str, start_time: int, attributes: dict[str, object]) -> Span:
            return Span(name, start_time, attributes)

    sink = span_sink(Tracer())
    assert sink is not None
    sink([{"id": "req_1", "created_at": 1000.5, "latency_ms": 250.0, "ttft_ms": 40.0, "endpoint": "chat",
           "model_requested": "sim-gpt", "model_served": "sim-gpt", "provider": "sim", "input_tokens": 7,
           "output_tokens": 3, "status": 200, "error_type": None, "app": "a", "stream": True, "key_id": "k"}])
    assert made == [{"name": "chat sim-gpt", "start": 1_000_500_000_000, "end": 1_000_750_000_000, "attrs": {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "sim-gpt", "gen_ai.response.model": "sim-gpt",
        "gen_ai.system": "sim", "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3,
        "http.response.status_code": 200, "perilune.request_id": "req_1", "perilune.app": "a",
        "perilune.stream": True, "perilune.ttft_ms": 40.0}}]
