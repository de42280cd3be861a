"""Prometheus metrics (``GET /metrics``).

Request metrics are not touched on the request path: the usage writer feeds each batch of usage rows
to :meth:`Metrics.observe_rows` from its worker thread, so a request pays nothing for them, and the
figures lag the requests by at most one flush interval (``usage_flush_s``). Queue and spool figures
are read when Prometheus scrapes.

Labels are bounded: ``model`` is the catalog model that served the request ("unknown" when none did,
so a client cannot mint label values by sending made-up model names), ``provider`` a configured
provider name. Apps, keys and payloads never appear in metrics.

With ``workers > 1`` each worker process keeps its own registry; a scrape sees the worker that
answered it (the ``pid`` in ``perilune_process_info`` tells which).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
                     float("inf"))
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """What the usage recorder reports at scrape time."""

    queue_depth: int
    spool_bytes: int
    written: int
    spooled: int
    replayed: int
    db_up: bool


class _RecorderCollector(Collector):
    def __init__(self, stats: Callable[[], RecorderStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield GaugeMetricFamily("perilune_usage_queue_depth", "Usage events waiting to be written.",
                                value=s.queue_depth)
        yield GaugeMetricFamily("perilune_usage_spool_bytes", "Bytes of usage events spooled to disk, "
                                "waiting for the database.", value=s.spool_bytes)
        yield CounterMetricFamily("perilune_usage_records_written", "Usage records written to the database.",
                                  value=s.written)
        yield CounterMetricFamily("perilune_usage_records_spooled", "Usage records spooled to disk.",
                                  value=s.spooled)
        yield CounterMetricFamily("perilune_usage_records_replayed", "Spooled usage records replayed.",
                                  value=s.replayed)
        yield GaugeMetricFamily("perilune_usage_database_up", "1 when the usage writer reaches the database.",
                                value=1 if s.db_up else 0)
        info = GaugeMetricFamily("perilune_process_info", "This worker process.", labels=["pid"])
        info.add_metric([str(os.getpid())], 1)
        yield info


class Metrics:
    def __init__(self) -> None:
        # no *_created series: they double the output and nobody graphs them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("perilune_requests", "Requests, by served model, provider and HTTP status.",
                                ["model", "provider", "status"], registry=r)
        self.errors = Counter("perilune_request_errors", "Failed requests (status >= 400), by error type.",
                              ["model", "provider", "error_type"], registry=r)
        self.latency = Histogram("perilune_request_latency_seconds", "Request latency (whole response).",
                                 ["model", "provider"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.ttft = Histogram("perilune_ttft_seconds", "Time to the first token (first byte of the answer).",
                              ["model", "provider"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.tokens = Counter("perilune_tokens", "Tokens, by kind (input excludes cache reads and writes).",
                              ["model", "provider", "kind"], registry=r)
        self.cost = Counter("perilune_cost_usd", "Cost in USD.", ["model", "provider"], registry=r)
        self._children: dict[tuple[str, str], tuple[Any, ...]] = {}

    def watch_recorder(self, stats: Callable[[], RecorderStats]) -> None:
        self.registry.register(_RecorderCollector(stats))

    def _series(self, model: str, provider: str) -> tuple[Any, ...]:
        key = (model, provider)
        got = self._children.get(key)
        if got is None:
            got = (self.latency.labels(model, provider), self.ttft.labels(model, provider),
                   *(self.tokens.labels(model, provider, k) for k in TOKEN_KINDS),
                   self.cost.labels(model, provider))
            self._children[key] = got
        return got

    def observe_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Account a batch of usage rows (the dicts the recorder writes). Counters are summed per
        series first, so a batch costs one increment per series plus one observation per timing."""
        counts: dict[tuple[str, str, str], int] = {}
        errors: dict[tuple[str, str, str], int] = {}
        sums: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            model, provider = r.get("model_served") or "unknown", r.get("provider") or "none"
            status = int(r["status"])
            k3 = (model, provider, str(status))
            counts[k3] = counts.get(k3, 0) + 1
            if status >= 400:
                ek = (model, provider, str(r.get("error_type") or "error"))
                errors[ek] = errors.get(ek, 0) + 1
            lat_h, ttft_h, *_ = self._series(model, provider)
            if r.get("latency_ms") is not None:
                lat_h.observe(r["latency_ms"] / 1000.0)
            if r.get("ttft_ms") is not None:
                ttft_h.observe(r["ttft_ms"] / 1000.0)
            acc = sums.get((model, provider))
            if acc is None:
                acc = sums[(model, provider)] = [0.0] * (len(TOKEN_KINDS) + 1)
            for i, kind in enumerate(TOKEN_KINDS):
                acc[i] += r.get(f"{kind}_tokens") or 0
            acc[-1] += r.get("total_cost_pusd") or 0
        for (model, provider, code), n in counts.items():
            self.requests.labels(model, provider, code).inc(n)
        for (model, provider, etype), n in errors.items():
            self.errors.labels(model, provider, etype).inc(n)
        for (model, provider), acc in sums.items():
            series = self._series(model, provider)
            for i in range(len(TOKEN_KINDS)):
                if acc[i]:
                    series[2 + i].inc(acc[i])
            if acc[-1]:
                series[-1].inc(acc[-1] / 1e12)

    def render(self) -> bytes:
        return generate_latest(self.registry)
