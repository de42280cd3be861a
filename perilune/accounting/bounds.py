"""Per-model bounds on request numbers, checked before any reservation and before anything is forwarded.

For embedding models the catalog's ``max_dimensions`` bounds ``dimensions``. (Output limits,
``max_tokens`` against the model's ``max_output_tokens``, and ``n`` are checked where the output is
reserved, in perilune.accounting.billing; absolute caps are in perilune.schema.)
"""

from __future__ import annotations

from typing import Any

from perilune.accounting.catalog import ModelInfo
from perilune.errors import InvalidRequest


def check_bounds(model: ModelInfo, raw: dict[str, Any]) -> None:
    """400 naming the parameter when ``raw`` asks more of ``model`` than it can give."""
    value, limit = raw.get("dimensions"), model.max_dimensions
    if limit is None or not isinstance(value, int) or isinstance(value, bool):
        return
    if value > limit:
        raise InvalidRequest(f"'dimensions' is {value}, but {model.id} supports at most {limit} dimensions.",
                             param="dimensions", code="invalid_value")
