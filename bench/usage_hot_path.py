"""What usage recording and metrics cost per request, measured side by side in one process.

    .venv/bin/python bench/usage_hot_path.py

- ``record()``: what a request pays on its own path (an append to a deque), with and without
  ``"observability": true`` (which serialises the payload there).
- Prometheus metrics updated inline per request with prometheus_client's Counter/Histogram objects
  (labels lookup + lock per update) versus perilune's way: plain sums updated from the usage writer's
  batches (``Metrics.observe_rows``) and exposed at scrape time.
- ``to_row``: turning an outcome into a database row (done by the writer, off the request path).
"""

from __future__ import annotations

import sys
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Counter, Histogram

from perilune.accounting.recorder import UsageRecorder, to_row
from perilune.metrics import LATENCY_BUCKETS_S, Metrics
from perilune.schema.canonical import Attempt, Cost, Usage, UsageEvent
from perilune.store.db import Database

N = 200_000


def outcome(i: int, capture: bool = False) -> UsageEvent:
    payload_request = payload_response = None
    if capture:
        payload_request = {"model": "sim-gpt", "messages": [
            {"role": "system", "content": "You are helpful. " * 20},
            {"role": "user", "content": "Summarise the following text. " + "lorem ipsum " * 100}]}
        payload_response = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                            "content": "word " * 48}}]}
    return UsageEvent(
        request_id=f"req_{i:024x}", started_wall=time.time(), dialect="openai", endpoint="chat",
        model_requested="sim-gpt", model_served="sim-gpt", provider="sim", status=200, error_type=None,
        usage=Usage(input_tokens=120, output_tokens=48, cache_read_tokens=16),
        cost=Cost(120_000_000, 96_000_000, 8_000_000), ttft_ms=140.25,
        latency_ms=812.5, stream=bool(i % 2), route=(Attempt("sim", "sim-gpt", 200),), charged_pusd=None,
        free_tokens=None, key_id="key_1", account_id="acct_1", app="app", capture=capture,
        payload_request=payload_request, payload_response=payload_response)


def per_call_us(fn: Any, n: int) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    rec = UsageRecorder(Database("sqlite://"), Path("/tmp/perilune-bench-spool"), max_pending=10**9,
                        batch_size=10**9)
    plain = [outcome(i) for i in range(N)]
    it = iter(plain)
    r_plain = per_call_us(lambda: rec.record(next(it)), N // 5)
    rec._pending.clear()
    captured = [outcome(i, capture=True) for i in range(20_000)]
    it2 = iter(captured)
    r_capture = per_call_us(lambda: rec.record(next(it2)), 4_000)
    rec._pending.clear()

    m = Metrics()
    labels = [("sim-gpt", "sim"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic")]
    reg = CollectorRegistry()
    requests = Counter("r", "r", ["model", "provider", "status"], registry=reg)
    latency = Histogram("l", "l", ["model", "provider"], buckets=LATENCY_BUCKETS_S, registry=reg)
    ttft = Histogram("t", "t", ["model", "provider"], buckets=LATENCY_BUCKETS_S, registry=reg)
    tokens = Counter("k", "k", ["model", "provider", "kind"], registry=reg)
    cost = Counter("c", "c", ["model", "provider"], registry=reg)

    def inline(i: int = 0) -> None:  # prometheus_client's metric objects, updated on the request path
        model, provider = labels[i % 3]
        requests.labels(model, provider, "200").inc()
        latency.labels(model, provider).observe(0.8125)
        ttft.labels(model, provider).observe(0.14025)
        for kind, v in (("input", 120), ("output", 48), ("cache_read", 16)):
            tokens.labels(model, provider, kind).inc(v)
        cost.labels(model, provider).inc(0.000224)

    t_inline = per_call_us(inline, 20_000)
    rows = [to_row((o, None)) for o in plain[:500]]
    for j, r in enumerate(rows):
        r["model_served"], r["provider"] = labels[j % 3]
    t_batch = per_call_us(lambda: m.observe_rows(rows), 200) / len(rows)
    items = [(o, None) for o in plain[:10_000]]
    t_row = per_call_us(lambda: [to_row(x) for x in items], 5) / len(items)

    print(f"{'per request':<62} {'µs':>8}")
    print(f"{'record() on the request path':<62} {r_plain:>8.2f}")
    print(f"{'record() with observability (2.6 kB request payload)':<62} {r_capture:>8.2f}")
    print(f"{'metrics inline, prometheus_client objects (request path)':<62} {t_inline:>8.2f}")
    print(f"{'metrics from the writer batch (Metrics.observe_rows, per row)':<62} {t_batch:>8.2f}")
    print(f"{'to_row in the writer thread':<62} {t_row:>8.2f}")


if __name__ == "__main__":
    main()
