"""Prometheus metrics (``GET /metrics``).

Request metrics are not touched on the request path: the usage writer feeds each batch of usage rows
to :meth:`Metrics.observe_rows` from its worker thread, so a request pays nothing for them, and the
figures lag the requests by at most one flush interval (``usage_flush_s``). Queue and spool figures
are read when Prometheus scrapes.

Labels are bounded: ``model`` is the catalog model that served the request ("unknown" when none did,
so a client cannot mint label values by sending made-up model names), ``provider`` a configured
provider name. Apps, keys and payloads never appear in metrics.

With ``workers > 1`` every worker publishes its sums to a file of its own in a directory of this
server (``<home>/run/metrics-<port>/<pid>.json``, emptied by the parent at start) after each usage
batch and every second, and a scrape adds up all of them: ``/metrics`` reports the whole server,
whichever worker answers (``perilune_workers`` and one ``perilune_process_info`` per worker say
which ones reported).
"""

from __future__ import annotations

import contextlib
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
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


    @staticmethod
    def combine(many: list[RecorderStats]) -> RecorderStats:
        """Several workers' figures as one server's: counts add up; the spool directory is shared by
        the workers of one home, so its size is the largest seen; the database is up if all say so."""
        return RecorderStats(queue_depth=sum(s.queue_depth for s in many),
                             spool_bytes=max((s.spool_bytes for s in many), default=0),
                             written=sum(s.written for s in many), spooled=sum(s.spooled for s in many),
                             replayed=sum(s.replayed for s in many), db_up=all(s.db_up for s in many))


class _RecorderCollector(Collector):
    def __init__(self, stats: Callable[[], RecorderStats], pids: Callable[[], list[int]] | None = None) -> None:
        self._stats = stats
        self._pids = pids or (lambda: [os.getpid()])

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
        pids = self._pids()
        yield GaugeMetricFamily("perilune_workers", "Worker processes whose figures this scrape adds up.",
                                value=len(pids))
        info = GaugeMetricFamily("perilune_process_info", "A worker process of this server.", labels=["pid"])
        for pid in sorted(pids):
            info.add_metric([str(pid)], 1)
        yield info


Key3 = tuple[str, str, str]
Key2 = tuple[str, str]


@dataclass(slots=True)
class _State:
    """Plain sums, mergeable across workers."""

    requests: dict[Key3, int] = field(default_factory=dict)
    errors: dict[Key3, int] = field(default_factory=dict)
    tokens: dict[Key3, int] = field(default_factory=dict)
    cost_pusd: dict[Key2, int] = field(default_factory=dict)
    latency: dict[Key2, _Hist] = field(default_factory=dict)
    ttft: dict[Key2, _Hist] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(dict(self.requests), dict(self.errors), dict(self.tokens), dict(self.cost_pusd),
                      {k: h.copy() for k, h in self.latency.items()}, {k: h.copy() for k, h in self.ttft.items()})

    def add(self, other: _State) -> None:
        for src, dst in ((other.requests, self.requests), (other.errors, self.errors),
                         (other.tokens, self.tokens)):
            for k, n in src.items():
                dst[k] = dst.get(k, 0) + n
        for k2, n in other.cost_pusd.items():
            self.cost_pusd[k2] = self.cost_pusd.get(k2, 0) + n
        for src_h, dst_h in ((other.latency, self.latency), (other.ttft, self.ttft)):
            for k2, h in src_h.items():
                dst_h.setdefault(k2, _Hist()).merge(h)

    def to_json(self) -> dict[str, Any]:
        return {"requests": [[*k, n] for k, n in self.requests.items()],
                "errors": [[*k, n] for k, n in self.errors.items()],
                "tokens": [[*k, n] for k, n in self.tokens.items()],
                "cost_pusd": [[*k, n] for k, n in self.cost_pusd.items()],
                "latency": [[*k, h.buckets, h.count, h.total] for k, h in self.latency.items()],
                "ttft": [[*k, h.buckets, h.count, h.total] for k, h in self.ttft.items()]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> _State:
        st = _State()
        for name in ("requests", "errors", "tokens"):
            getattr(st, name).update({(str(a), str(b), str(c)): int(n) for a, b, c, n in d.get(name, ())})
        st.cost_pusd.update({(str(a), str(b)): int(n) for a, b, n in d.get("cost_pusd", ())})
        for name in ("latency", "ttft"):
            hists = getattr(st, name)
            for a, b, buckets, count, total in d.get(name, ()):
                h = _Hist()
                if len(buckets) == len(h.buckets):
                    h.buckets, h.count, h.total = [int(x) for x in buckets], int(count), float(total)
                    hists[(str(a), str(b))] = h
        return st


class Metrics:
    """Request metrics kept as plain sums (updated once per usage batch, under one lock) and exposed
    through a collector at scrape time. prometheus_client's own Counter/Histogram objects take a lock
    and a labels lookup per update: about 30 µs per request for this set, against about 4 µs per row
    this way, off the request path (bench/usage_hot_path.py)."""

    def __init__(self, share_dir: str | os.PathLike[str] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._state = _State()
        self._recorder_stats: Callable[[], RecorderStats] | None = None
        self._share_dir = Path(share_dir) if share_dir is not None else None
        self._publish_lock = threading.Lock()
        self.registry.register(_RequestCollector(self._server_state))

    def watch_recorder(self, stats: Callable[[], RecorderStats]) -> None:
        self._recorder_stats = stats
        self.registry.register(_RecorderCollector(lambda: self._server_recorder(), self._server_pids))

    # ---- sharing across worker processes ----
    @property
    def shared(self) -> bool:
        return self._share_dir is not None

    def _own_file(self) -> Path:
        assert self._share_dir is not None
        return self._share_dir / f"{os.getpid()}.json"

    def publish(self) -> None:
        """Write this worker's figures where the other workers' scrapes read them (atomically)."""
        if self._share_dir is None:
            return
        with self._lock:
            state = self._state.to_json()
        stats = self._recorder_stats() if self._recorder_stats is not None else None
        doc = {"pid": os.getpid(), "state": state,
               "recorder": None if stats is None else [stats.queue_depth, stats.spool_bytes, stats.written,
                                                       stats.spooled, stats.replayed, stats.db_up]}
        path = self._own_file()
        tmp = path.with_suffix(".tmp")
        with self._publish_lock:
            tmp.write_bytes(orjson.dumps(doc))
            os.replace(tmp, path)

    def _others(self) -> list[dict[str, Any]]:
        if self._share_dir is None:
            return []
        own, out = self._own_file(), []
        for path in self._share_dir.glob("*.json"):
            if path == own:
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError, ValueError, TypeError):
                out.append(orjson.loads(path.read_bytes()))
        return out

    def _server_state(self) -> _State:
        with self._lock:
            total = self._state.copy()
        for doc in self._others():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                total.add(_State.from_json(doc["state"]))
        return total

    def _server_recorder(self) -> RecorderStats:
        assert self._recorder_stats is not None
        many = [self._recorder_stats()]
        for doc in self._others():
            r = doc.get("recorder")
            if isinstance(r, list) and len(r) == 6:
                many.append(RecorderStats(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), bool(r[5])))
        return RecorderStats.combine(many)

    def _server_pids(self) -> list[int]:
        return [os.getpid()] + [int(d["pid"]) for d in self._others() if isinstance(d.get("pid"), int)]

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
        st = self._state
        with self._lock:
            for src, dst in ((requests, st.requests), (errors, st.errors), (tokens, st.tokens)):
                for k, n in src.items():
                    dst[k] = dst.get(k, 0) + n
            for k2, n in cost.items():
                st.cost_pusd[k2] = st.cost_pusd.get(k2, 0) + n
            for values, hists in ((latency, st.latency), (ttft, st.ttft)):
                for k2, vs in values.items():
                    h = hists.get(k2)
                    if h is None:
                        h = hists[k2] = _Hist()
                    h.add(vs)
        if self._share_dir is not None:
            with contextlib.suppress(OSError):
                self.publish()

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

    def copy(self) -> _Hist:
        h = _Hist()
        h.buckets, h.count, h.total = list(self.buckets), self.count, self.total
        return h

    def merge(self, other: _Hist) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.count += other.count
        self.total += other.total

    def exposition(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip(LATENCY_BUCKETS_S, self.buckets, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class _RequestCollector(Collector):
    def __init__(self, state: Callable[[], _State]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        st = self._state()  # a copy: this worker's sums, plus the other workers' when shared
        requests, errors, tokens, cost = st.requests, st.errors, st.tokens, st.cost_pusd
        latency = {k: (h.exposition(), h.total) for k, h in st.latency.items()}
        ttft = {k: (h.exposition(), h.total) for k, h in st.ttft.items()}
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
