"""The OpenAPI 3.1 document of perilune's own API, served at /openapi.json. Request schemas are generated
from the same msgspec types that validate requests, so the document cannot drift from the code."""

from __future__ import annotations

from typing import Any

import msgspec

from perilune.api.account import AlertsBody
from perilune.api.admin import NewAccount, NewKey
from perilune.dialects.responses.schema import ResponsesRequest
from perilune.schema.anthropic import CountTokensRequest, MessagesRequest
from perilune.schema.media import ImageGenerationRequest
from perilune.schema.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

_ERROR = {"$ref": "#/components/schemas/Error"}


def _op(summary: str, *, body: str | None = None, tag: str, secured: bool = True, stream: bool = False,
        ok: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": ok or {"type": "object"}}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            "200": {"description": "OK", "content": content},
            "400": {"description": "Invalid request", "content": {"application/json": {"schema": _ERROR}}},
            "401": {"description": "Missing or invalid key", "content": {"application/json": {"schema": _ERROR}}},
            "404": {"description": "Unknown model", "content": {"application/json": {"schema": _ERROR}}},
            "429": {"description": "Rate limited (Retry-After)",
                    "content": {"application/json": {"schema": _ERROR}}},
            "502": {"description": "Upstream failed", "content": {"application/json": {"schema": _ERROR}}},
            "504": {"description": "Upstream timed out", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if not secured:
        op["security"] = []
    return op


def openapi_document(version: str) -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(
        [ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ImageGenerationRequest, NewAccount,
         NewKey, MessagesRequest, CountTokensRequest, AlertsBody, ResponsesRequest],
        ref_template="#/components/schemas/{name}")
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
            "message": {"type": "string"}, "type": {"type": "string"},
            "code": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]},
            "retry_after": {"type": "number"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "perilune", "version": version,
                 "description": "A self-hosted LLM API gateway speaking the OpenAI dialect."},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/v1/chat/completions": {"post": _op("Create a chat completion", body="ChatCompletionRequest",
                                                 tag="openai", stream=True)},
            "/v1/completions": {"post": _op("Create a (legacy) completion", body="CompletionRequest",
                                            tag="openai", stream=True)},
            "/v1/embeddings": {"post": _op("Create embeddings", body="EmbeddingRequest", tag="openai")},
            "/v1/responses": {"post": _op("Create a response (OpenAI's Responses API, any model)",
                                          body="ResponsesRequest", tag="openai", stream=True)},
            "/v1/responses/{response_id}": {"get": _op("A stored response", tag="openai"),
                                            "delete": _op("Delete a stored response", tag="openai")},
            "/v1/responses/{response_id}/input_items": {"get": _op("The input items of a stored response",
                                                                   tag="openai")},
            "/v1/messages": {"post": _op("Create a message (Anthropic dialect, any model); errors use "
                                         "Anthropic's envelope", body="MessagesRequest", tag="anthropic",
                                         stream=True)},
            "/v1/messages/count_tokens": {"post": _op("Count input tokens (exact from Anthropic providers, "
                                                      "estimated otherwise)", body="CountTokensRequest",
                                                      tag="anthropic")},
            "/v1/images/generations": {"post": _op("Generate images (priced per image)",
                                                   body="ImageGenerationRequest", tag="openai")},
            "/v1/audio/transcriptions": {"post": _op("Transcribe audio: multipart/form-data with file, "
                                                     "model, response_format... (priced per audio "
                                                     "minute)", tag="openai")},
            "/v1/models": {"get": _op("List catalog models (top-level array); ?input= and ?output= filter "
                                      "by modalities", tag="openai", secured=False, ok={"type": "array"})},
            "/v1/models/{model}": {"get": _op("One catalog model", tag="openai", secured=False)},
            "/health": {"get": _op("Liveness and readiness", tag="ops", secured=False)},
            "/ready": {"get": _op("Readiness: 503 while the database is unreachable", tag="ops", secured=False)},
            "/metrics": {"get": _op("Prometheus metrics (admin key unless metrics_public)", tag="ops")},
            "/v1/balance": {"get": _op("The key's account: balance, spend today and this month, alert settings",
                                       tag="account")},
            "/v1/balance/alerts": {"post": _op("Set low-balance alert thresholds and webhook; answers the balance",
                                               body="AlertsBody", tag="account")},
            "/v1/usage/records": {"get": _op("Usage records, newest first (?from=&to=&app=&model=&provider="
                                             "&status=&key_id=&limit=&cursor=); an account key sees its "
                                             "own account", tag="usage")},
            "/v1/usage/records/{record_id}": {"get": _op("One usage record, with its payload when it was "
                                                         "sent with observability", tag="usage")},
            "/v1/usage/aggregate": {"get": _op("Requests, errors, tokens, cost, latency and TTFT "
                                               "percentiles (?group_by=app|model|provider|key|account|"
                                               "hour|day[,second] and the record filters)", tag="usage")},
            "/admin/accounts": {"get": _op("List accounts", tag="admin"),
                                "post": _op("Create an account", body="NewAccount", tag="admin")},
            "/admin/keys": {"get": _op("List keys (?account_id=)", tag="admin"),
                            "post": _op("Create a key (the secret is shown once)", body="NewKey", tag="admin")},
            "/admin/keys/{key_id}": {"delete": _op("Revoke a key", tag="admin")},
        },
    }
