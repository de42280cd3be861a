"""Labelled routing data: which model answered which prompt correctly, at what cost.

Input formats (several files may be given; their models must be the same):

- CSV as published with RouterBench/RouterDC: ``sample_id``, ``prompt``, ``eval_name``, per model a
  0/1 column named by the model id, ``<model>|total_cost`` (USD) and optionally
  ``<model>|model_response`` (used for the mean output tokens). A prompt written as a Python list
  of strings (``"['...']"``) is joined with newlines.
- JSONL with the same keys, one object per line (``"<model>"``: 0/1 or a score in [0, 1]).

Files may be gzipped (``.csv.gz``, ``.jsonl.gz``).
Rows where any model's label is missing are skipped (and counted). Costs are read as decimals
and kept as integer pico-USD.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from perilune.tokens import count_tokens

F64 = npt.NDArray[np.float64]
_FIXED = {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to", ""}
PICO_PER_USD = 10**12


@dataclass
class Labelled:
    models: list[str]
    sample_ids: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    evals: list[str] = field(default_factory=list)
    correct: F64 = field(default_factory=lambda: np.zeros((0, 0)))  # (n, models) in [0, 1]
    cost_pusd: F64 = field(default_factory=lambda: np.zeros((0, 0)))  # (n, models), integral values
    output_tokens: F64 = field(default_factory=lambda: np.zeros((0, 0)))  # (n, models)
    prompt_tokens: F64 = field(default_factory=lambda: np.zeros(0))  # (n,)
    sources: list[str] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: npt.NDArray[np.int64]) -> Labelled:
        idx = [int(i) for i in rows]
        return Labelled(self.models, [self.sample_ids[i] for i in idx], [self.prompts[i] for i in idx],
                        [self.evals[i] for i in idx], self.correct[rows], self.cost_pusd[rows],
                        self.output_tokens[rows], self.prompt_tokens[rows], self.sources, 0)


def prompt_text(cell: str) -> str:
    s = cell.strip()
    if s.startswith("[") and s.endswith("]"):
        try:
            parsed = ast.literal_eval(s)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return cell
        if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
            return "\n".join(parsed)
    return cell


def _pico(value: Any, where: str) -> int:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: cost {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{where}: cost {value!r} must be a finite number >= 0")
    return int(d * PICO_PER_USD)


def _label(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: label {value!r} is not a number in [0, 1]") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{where}: label {value!r} is outside [0, 1]")
    return v


def _response_tokens(cell: Any) -> float:
    if not cell:
        return float("nan")
    return float(count_tokens(prompt_text(str(cell))))


def _open(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    kind = path.name.lower().removesuffix(".gz")
    if kind.endswith((".jsonl", ".ndjson")):
        with _open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError(f"{path}:{n}: each line must be a JSON object")
                    yield obj
        return
    csv.field_size_limit(sys.maxsize)
    with _open(path) as f:
        yield from csv.DictReader(f)


def models_of(columns: Iterable[str]) -> list[str]:
    cols = list(columns)
    return [c for c in cols if c not in _FIXED and "|" not in c and f"{c}|total_cost" in cols]


def read_labelled(paths: Iterable[str | Path]) -> Labelled:
    data: Labelled | None = None
    correct: list[list[float]] = []
    cost: list[list[int]] = []
    out_tokens: list[list[float]] = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise ValueError(f"labelled data file not found: {path}")
        rows = _rows(path)
        for n, row in enumerate(rows, 2):
            if data is None:
                models = models_of(row.keys())
                if len(models) < 2:
                    raise ValueError(f"{path}: needs >= 2 models (a 0/1 column per model and <model>|total_cost)")
                data = Labelled(models)
            elif n == 2 and models_of(row.keys()) != data.models:
                raise ValueError(f"{path}: its models differ from the first file's")
            if "prompt" not in row:
                raise ValueError(f"{path}: no 'prompt' column")
            where = f"{path}:{n}"
            labels = [_label(row.get(m), f"{where} [{m}]") for m in data.models]
            if any(v is None for v in labels):
                data.skipped += 1
                continue
            data.sample_ids.append(str(row.get("sample_id") or f"{path.stem}-{n}"))
            data.prompts.append(prompt_text(str(row["prompt"])))
            data.evals.append(str(row.get("eval_name") or path.stem))
            correct.append([float(v) for v in labels if v is not None])
            cost.append([_pico(row.get(f"{m}|total_cost"), f"{where} [{m}|total_cost]") for m in data.models])
            out_tokens.append([_response_tokens(row.get(f"{m}|model_response")) for m in data.models])
        if data is not None and path.name not in data.sources:
            data.sources.append(path.name)
    if data is None or not data.prompts:
        raise ValueError("no labelled rows read")
    data.correct = np.asarray(correct, dtype=np.float64)
    data.cost_pusd = np.asarray(cost, dtype=np.float64)
    data.output_tokens = np.asarray(out_tokens, dtype=np.float64)
    data.prompt_tokens = np.asarray([count_tokens(p) for p in data.prompts], dtype=np.float64)
    return data
