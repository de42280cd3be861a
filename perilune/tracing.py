"""Optional OpenTelemetry traces (``otel_traces = true``): one span per request, made from its usage
record by the usage writer, after the fact (with the request's real start and end times), so the
request path pays nothing.

Only ``opentelemetry-api`` is imported (guarded: without it the setting logs a warning and does
nothing). Where spans go is the operator's choice through the standard OpenTelemetry setup, e.g.
``opentelemetry-instrument perilune serve`` with ``OTEL_TRACES_EXPORTER`` / ``OTEL_EXPORTER_OTLP_*``;
without a configured SDK the API is a no-op. Attributes follow the GenAI semantic conventions; no
key, payload or message text is ever put on a span.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("perilune.tracing")

Row = dict[str, Any]


def span_sink(tracer: Any = None) -> Callable[[Iterable[Row]], None] | None:
    """A usage-row sink that emits spans, or None when opentelemetry is not installed."""
    if tracer is None:
        try:
            from opentelemetry import trace
        except ImportError:
            log.warning("otel_traces is on but opentelemetry-api is not installed; no traces")
            return None
        tracer = trace.get_tracer("perilune")

    def emit(rows: Iterable[Row]) -> None:
        for r in rows:
            start_ns = int(r["created_at"] * 1e9)
            end_ns = start_ns + int((r.get("latency_ms") or 0.0) * 1e6)
            attrs = {
                "gen_ai.operation.name": r["endpoint"],
                "gen_ai.request.model": r["model_requested"],
                "gen_ai.response.model": r["model_served"] or "",
                "gen_ai.system": r["provider"] or "",
                "gen_ai.usage.input_tokens": r.get("input_tokens") or 0,
                "gen_ai.usage.output_tokens": r.get("output_tokens") or 0,
                "http.response.status_code": r["status"],
                "perilune.request_id": r["id"],
                "perilune.app": r["app"],
                "perilune.stream": bool(r["stream"]),
            }
            if r.get("ttft_ms") is not None:
                attrs["perilune.ttft_ms"] = r["ttft_ms"]
            if r.get("error_type"):
                attrs["error.type"] = r["error_type"]
            span = tracer.start_span(f"{r['endpoint']} {r['model_requested']}", start_time=start_ns,
                                     attributes=attrs)
            span.end(end_time=end_ns)

    return emit
