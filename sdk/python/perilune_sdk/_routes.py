"""Every route the SDK calls, with the TypedDict of its body: the contract the tests check against the
gateway's own ``/openapi.json`` (every path there, every body field both ways, the required ones)."""

from __future__ import annotations

from dataclasses import dataclass

from perilune_sdk import _params as p


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below the base URL's /v1
    body: type | None = None
    fixed: frozenset[str] = frozenset()  # body fields the method sets itself (stream, execute, ...)


STREAM = frozenset({"stream", "stream_options"})

ROUTES: tuple[Route, ...] = (
    Route("POST", "/chat/completions", p.ChatCreateParams, STREAM),
    Route("POST", "/completions", p.CompletionCreateParams, STREAM),
    Route("POST", "/embeddings", p.EmbeddingCreateParams),
    Route("POST", "/messages", p.MessageCreateParams, frozenset({"stream"})),
    Route("POST", "/messages/count_tokens", p.CountTokensParams),
    Route("GET", "/models"),
    Route("GET", "/models/{model}"),
    Route("GET", "/balance"),
    Route("POST", "/balance/alerts", p.AlertParams),
    Route("GET", "/usage/records"),
    Route("GET", "/usage/records/{record_id}"),
    Route("GET", "/usage/aggregate"),
    Route("GET", "/providers"),
    Route("POST", "/router", p.RouterParams, frozenset({"stream", "stream_options", "execute"})),
    Route("GET", "/router/profiles"),
    Route("POST", "/feedback", p.FeedbackParams),
    Route("POST", "/responses", p.ResponseCreateParams, frozenset({"stream"})),
    Route("GET", "/responses/{response_id}"),
    Route("DELETE", "/responses/{response_id}"),
    Route("GET", "/responses/{response_id}/input_items"),
)

