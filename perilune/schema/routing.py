"""perilune's routing fields in a request body (both dialects), never forwarded upstream.

``provider``: a string pins one provider (as before); an object sets preferences::

    {"order": ["a", "b"], "only": [...], "ignore": [...], "sort": "price" | "latency" | "throughput",
     "allow_fallbacks": true}

``fallbacks`` (models tried after the requested one, in order), ``fallback_model`` (one more, after
them) and ``hedge`` (start the next deployment when the first token is late) complete them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

ProviderName = Annotated[str, Meta(min_length=1)]
ModelName = Annotated[str, Meta(min_length=1)]
Fallbacks = Annotated[list[ModelName], Meta(max_length=16)]
Sort = Literal["price", "latency", "throughput"]

# the request fields perilune reads and strips before a request goes upstream
ROUTING_FIELDS = ("fallbacks", "fallback_model", "hedge")


class ProviderPrefs(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    order: list[ProviderName] | None = None
    only: list[ProviderName] | None = None
    ignore: list[ProviderName] | None = None
    sort: Sort | None = None
    allow_fallbacks: bool = True


def fallback_models(fallbacks: list[str] | None, fallback_model: str | None) -> tuple[str, ...] | None:
    """``fallbacks`` then ``fallback_model``, without repeats, as the request gave them; None when it
    gave neither (the model's configured fallbacks apply), ``()`` for an explicit empty list."""
    if fallbacks is None and fallback_model is None:
        return None
    out = list(fallbacks or ())
    if fallback_model and fallback_model not in out:
        out.append(fallback_model)
    return tuple(dict.fromkeys(out))
