"""Every route the SDK calls, with the TypedDict of its body: the contract the tests check against the
gateway's own ``/openapi.json``. ``issue`` names the gateway issue that brings a route (or body
fields) not yet on every gateway; the tests report those as pending instead of failing."""

from __future__ import annotations

from dataclasses import dataclass

from perilune_sdk import _params as p


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below the base URL's /v1
    body: type | None = None
    fixed: frozenset[str] = frozenset()  # body fields the method sets itself (stream, execute, ...)
    issue: int | None = None


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
    Route("GET", "/providers", issue=9),
    Route("POST", "/router", p.RouterParams, frozenset({"stream", "stream_options", "execute"}), issue=10),
    Route("GET", "/router/profiles", issue=10),
    Route("POST", "/feedback", p.FeedbackParams, issue=10),
    Route("POST", "/responses", p.ResponseCreateParams, frozenset({"stream"}), issue=11),
    Route("GET", "/responses/{response_id}", issue=11),
    Route("DELETE", "/responses/{response_id}", issue=11),
    Route("GET", "/responses/{response_id}/input_items", issue=11),
)

# Body fields that a gateway issue in progress adds to routes that exist already.
PENDING_FIELDS: dict[str, int] = {"fallbacks": 9, "fallback_model": 9, "hedge": 9}
