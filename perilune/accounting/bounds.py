"""Per-model bounds on request numbers, checked before admission and before anything is forwarded.

The catalog says how far a model goes: ``max_output_tokens`` bounds ``max_tokens`` and
``max_completion_tokens`` (every dialect reaches here in the hub's OpenAI shape) and, for embedding
models, ``max_dimensions`` bounds ``dimensions``. Schema-level limits (``n``, absolute caps) are in
perilune.schema; these are the ones that depend on the model.
"""

from __future__ import annotations

from typing import Any

from perilune.accounting.catalog import ModelInfo
from perilune.errors import InvalidRequest


def check_bounds(model: ModelInfo, raw: dict[str, Any]) -> None:
    """400 naming the parameter when ``raw`` asks more of ``model`` than it can give."""
    for param in ("max_tokens", "max_completion_tokens"):
        _at_most(raw.get(param), model.max_output_tokens, param, model.id, "output tokens")
    _at_most(raw.get("dimensions"), model.max_dimensions, "dimensions", model.id, "dimensions")


def _at_most(value: Any, limit: int | None, param: str, model_id: str, what: str) -> None:
    if limit is None or not isinstance(value, int) or isinstance(value, bool):
        return
    if value > limit:
        raise InvalidRequest(f"'{param}' is {value}, but {model_id} supports at most {limit} {what}.",
                             param=param, code="invalid_value")
