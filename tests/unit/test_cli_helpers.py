"""The CLI's small helpers: progress on slow steps only, and listings that never cut a value."""

from __future__ import annotations

import io
import time

import pytest

from perilune.cli import emit, progress


def test_progress_says_nothing_for_a_quick_step() -> None:
    out = io.StringIO()
    with progress("migrating the database", out, after_s=0.5):
        pass
    assert out.getvalue() == ""


def test_progress_announces_a_slow_step_and_how_long_it_took() -> None:
    out = io.StringIO()
    with progress("migrating the database", out, after_s=0.05):
        time.sleep(0.3)
    first, second = out.getvalue().splitlines()
    assert first == "migrating the database…"
    assert second.startswith("migrating the database: done in ") and second.endswith(" s")


def test_emit_table_keeps_whole_values_and_json_keeps_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": "key_" + "x" * 60, "name": None, "admin": True, "extra": 1}]
    emit(rows, ("id", "name", "admin"), False)
    header, line = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "name", "admin"] and line.split() == ["key_" + "x" * 60, "-", "yes"]
    emit(rows, ("id",), True)
    assert '"extra": 1' in capsys.readouterr().out
