"""Metrics shared by the worker processes of one server: each publishes its sums, a scrape adds them."""

from __future__ import annotations

from pathlib import Path

from perilune.metrics import Metrics, RecorderStats


def row(status: int = 200, latency_ms: float = 30.0) -> dict[str, object]:
    return {"model_served": "m1", "provider": "p1", "status": status, "latency_ms": latency_ms, "ttft_ms": None,
            "input_tokens": 3, "output_tokens": 5, "total_cost_pusd": 7}


def test_two_workers_add_up_counters_histograms_and_recorder_figures(tmp_path: Path) -> None:
    a, b = Metrics(share_dir=tmp_path), Metrics(share_dir=tmp_path)
    a.watch_recorder(lambda: RecorderStats(2, 100, 5, 0, 0, True))
    a.observe_rows([row(), row(500)])
    # b stands for the other worker: same directory, another file (its pid differs in real life)
    b._own_file = lambda: tmp_path / "other.json"  # type: ignore[method-assign]
    b.watch_recorder(lambda: RecorderStats(1, 300, 7, 1, 0, False))
    b.observe_rows([row(latency_ms=3000.0)])
    b.publish()
    (tmp_path / "garbage.json").write_text("{not json")  # a torn or foreign file is ignored
    text = a.render().decode()
    assert 'perilune_requests_total{model="m1",provider="p1",status="200"} 2.0' in text
    assert 'perilune_requests_total{model="m1",provider="p1",status="500"} 1.0' in text
    assert 'perilune_request_latency_seconds_count{model="m1",provider="p1"} 3.0' in text
    assert 'perilune_request_latency_seconds_bucket{le="2.5",model="m1",provider="p1"} 2.0' in text
    assert 'perilune_tokens_total{kind="output",model="m1",provider="p1"} 15.0' in text
    assert "perilune_usage_queue_depth 3.0" in text and "perilune_usage_spool_bytes 300.0" in text
    assert "perilune_usage_records_written_total 12.0" in text and "perilune_usage_database_up 0.0" in text
    assert "perilune_workers 2.0" in text


def test_unshared_metrics_write_no_file(tmp_path: Path) -> None:
    m = Metrics()
    m.observe_rows([row()])
    m.publish()
    assert not m.shared and list(tmp_path.iterdir()) == []
    assert "perilune_workers 1.0" not in m.render().decode()  # no recorder watched: no worker figures
