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
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
                     float("inf"))
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
_TOKEN_COLUMNS = tuple((kind, f"{kind}_tokens") for kind in TOKEN_KINDS)


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
    """Request metrics kept as plain sums (updated once per usage batch, under one lock) and exposed
    through a collector at scrape time. prometheus_client's own Counter/Histogram objects take a lock
    and a labels lookup per update: about 30 µs per request for this set, against about 4 µs per row
    this way, off the request path (bench/usage_hot_path.py)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._tokens: dict[tuple[str, str, str], int] = {}
        self._cost_pusd: dict[tuple[str, str], int] = {}
        self._latency: dict[tuple[str, str], _Hist] = {}
        self._ttft: dict[tuple[str, str], _Hist] = {}
        self.registry.register(_RequestCollector(self))

    def watch_recorder(self, stats: Callable[[], RecorderStats]) -> None:
        self.registry.register(_RecorderCollector(stats))

    def observe_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Account a batch of usage rows (the dicts the recorder writes)."""
        requests: dict[tuple[str, str, str], int] = {}
        errors: dict[tuple[str, str, str], int] = {}
        tokens: dict[tuple[str, str, str], int] = {}
        cost: dict[tuple[str, str], int] = {}
        latency: dict[tuple[str, str], list[float]] = {}
        ttft: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            model, provider = r.get("model_served") or "unknown", r.get("provider") or "none"
            series = (model, provider)
            status = r["status"]
            k3 = (model, provider, str(status))
            requests[k3] = requests.get(k3, 0) + 1
            if status >= 400:
                ek = (model, provider, str(r.get("error_type") or "error"))
                errors[ek] = errors.get(ek, 0) + 1
            v = r.get("latency_ms")
            if v is not None:
                latency.setdefault(series, []).append(v / 1000.0)
            v = r.get("ttft_ms")
            if v is not None:
                ttft.setdefault(series, []).append(v / 1000.0)
            for kind, column in _TOKEN_COLUMNS:
                n = r.get(column)
                if n:
                    tk = (model, provider, kind)
                    tokens[tk] = tokens.get(tk, 0) + n
            n = r.get("total_cost_pusd")
            if n:
                cost[series] = cost.get(series, 0) + n
        with self._lock:
            for src, dst in ((requests, self._requests), (errors, self._errors), (tokens, self._tokens)):
                for k, n in src.items():
                    dst[k] = dst.get(k, 0) + n
            for k2, n in cost.items():
                self._cost_pusd[k2] = self._cost_pusd.get(k2, 0) + n
            for values, hists in ((latency, self._latency), (ttft, self._ttft)):
                for k2, vs in values.items():
                    h = hists.get(k2)
                    if h is None:
                        h = hists[k2] = _Hist()
                    h.add(vs)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Hist:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(LATENCY_BUCKETS_S)  # non-cumulative; the last is +Inf
        self.count = 0
        self.total = 0.0

    def add(self, values: list[float]) -> None:
        for v in values:
            self.buckets[bisect_left(LATENCY_BUCKETS_S, v)] += 1
            self.total += v
        self.count += len(values)

    def exposition(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip(LATENCY_BUCKETS_S, self.buckets, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class _RequestCollector(Collector):
    def __init__(self, m: Metrics) -> None:
        self._m = m

    def collect(self) -> Iterator[Metric]:
        m = self._m
        with m._lock:
            requests, errors, tokens = dict(m._requests), dict(m._errors), dict(m._tokens)
            cost = dict(m._cost_pusd)
            latency = {k: (h.exposition(), h.total) for k, h in m._latency.items()}
            ttft = {k: (h.exposition(), h.total) for k, h in m._ttft.items()}
        fam = CounterMetricFamily("perilune_requests", "Requests, by served model, provider and HTTP status.",
                                  labels=["model", "provider", "status"])
        for k3, n in sorted(requests.items()):
            fam.add_metric(list(k3), n)
        yield fam
        fam = CounterMetricFamily("perilune_request_errors", "Failed requests (status >= 400), by error type.",
                                  labels=["model", "provider", "error_type"])
        for k3, n in sorted(errors.items()):
            fam.add_metric(list(k3), n)
        yield fam
        for name, doc, data in (
                ("perilune_request_latency_seconds", "Request latency (whole response).", latency),
                ("perilune_ttft_seconds", "Time to the first token (first byte of the answer).", ttft)):
            hist = HistogramMetricFamily(name, doc, labels=["model", "provider"])
            for k2, (buckets, total) in sorted(data.items()):
                hist.add_metric(list(k2), buckets, total)
            yield hist
        fam = CounterMetricFamily("perilune_tokens", "Tokens, by kind (input excludes cache reads and writes).",
                                  labels=["model", "provider", "kind"])
        for k3, n in sorted(tokens.items()):
            fam.add_metric(list(k3), n)
        yield fam
        fam = CounterMetricFamily("perilune_cost_usd", "Cost in USD.", labels=["model", "provider"])
        for k2, pico in sorted(cost.items()):
            fam.add_metric(list(k2), pico / 1e12)
        yield fam
