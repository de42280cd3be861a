"""The OpenAPI 3.1 document of perilune's own API, served at /openapi.json. Request schemas are generated
from the same msgspec types that validate requests, so the document cannot drift from the code; a test
(tests/unit/test_openapi.py) checks that every route the app registers is documented here."""

from __future__ import annotations

from typing import Any

import msgspec

from perilune.api.account import AlertsBody, Amount, LimitsBody
from perilune.api.admin import NewAccount, NewKey
from perilune.api.identities import NewIdentity
from perilune.api.router import FeedbackRequest, RouterFields
from perilune.dialects.responses.schema import ResponsesRequest
from perilune.schema.anthropic import CountTokensRequest, MessagesRequest
from perilune.schema.media import ImageGenerationRequest, TranscriptionRequest
from perilune.schema.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERR = {"application/json": {"schema": _ERROR}}
_ID = {"type": "string", "minLength": 1, "maxLength": 200}

_STATUS = {
    "400": "Invalid request (error.param names the parameter)",
    "401": "Missing or invalid key",
    "402": "The prepaid balance cannot cover the request",
    "403": "The key may not do this (e.g. an account key on an admin route)",
    "404": "Not found",
    "405": "Method not allowed (see the Allow header)",
    "413": "Request body too large",
    "429": "Rate limited (Retry-After)",
    "502": "Upstream failed",
    "503": "A store perilune needs is unavailable",
    "504": "Upstream timed out",
}


def _param(name: str, where: str, description: str, schema: dict[str, Any] | None = None, *,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "description": description,
            "schema": schema or {"type": "string"}}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return _param(name, "query", description, schema)


def _path(name: str, description: str) -> dict[str, Any]:
    return _param(name, "path", description, _ID)


def _op(summary: str, *, tag: str, body: str | None = None, secured: bool = True, stream: bool = False,
        ok: dict[str, Any] | None = None, ok_status: str = "200", params: list[dict[str, Any]] | None = None,
        errors: tuple[str, ...] = ("400", "401", "403", "404", "405", "413", "429", "503"),
        multipart: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": ok or {"type": "object"}}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {ok_status: {"description": "OK", "content": content}}
    for status in errors:
        responses[status] = {"description": _STATUS[status], "content": _ERR}
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if multipart:
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "allOf": [{"$ref": f"#/components/schemas/{multipart}"},
                      {"type": "object", "required": ["file"],
                       "properties": {"file": {"type": "string", "format": "binary"}}}]}}}}
    if not secured:
        op["security"] = []
    return op


_UPSTREAM = ("400", "401", "402", "403", "404", "405", "413", "429", "502", "503", "504")
_USAGE_FILTERS = [
    _q("from", "Start (inclusive): UNIX seconds or ISO 8601, between 1970 and 9999"),
    _q("to", "End (exclusive): UNIX seconds or ISO 8601, after `from`"),
    _q("app", "X-App-ID of the requests"),
    _q("model", "Model served (or requested, when none was served)"),
    _q("provider", "Provider name"),
    _q("status", "ok, error or an HTTP status code"),
    _q("key_id", "Key id"),
    _q("account_id", "Admin keys: only this account (an account key sees its own)"),
]
_ACCOUNT = _path("account_id", "Account id")
_KEY = _path("key_id", "Key id")
_RESPONSE = _path("response_id", "Response id")


def _html(summary: str, *, form: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None
          ) -> dict[str, Any]:
    """A dashboard page: HTML, signed in with the session cookie (303 to the sign-in page without it)."""
    op: dict[str, Any] = {
        "summary": summary, "tags": ["dashboard"], "security": [{"session": []}, {}],
        "responses": {
            "200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
            "303": {"description": "Redirect (to sign in, or after a form)"},
            "400": {"description": "Invalid form", "content": {"text/html": {"schema": {"type": "string"}}}},
            "401": {"description": "Key not valid", "content": {"text/html": {"schema": {"type": "string"}}}},
            "403": {"description": "Missing CSRF token or another origin",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
            "404": {"description": "Not found", "content": {"text/html": {"schema": {"type": "string"}}}},
        },
    }
    if params:
        op["parameters"] = params
    if form is not None:
        op["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {k: {"type": "string"} for k in form}}}}}
    return op


def _paths() -> dict[str, Any]:
    ledger_entry = {
        kind: {"post": _op(f"Add a {kind} to an account's ledger (amount_usd as a decimal string; "
                           + ("positive" if kind != "adjustment" else "signed, not zero") + ")",
                           body="Amount", tag="admin", ok_status="201", params=[_ACCOUNT])}
        for kind in ("topup", "refund", "adjustment")
    }
    return {
        "/v1/chat/completions": {"post": _op("Create a chat completion", body="ChatCompletionRequest",
                                             tag="openai", stream=True, errors=_UPSTREAM)},
        "/v1/completions": {"post": _op("Create a (legacy) completion", body="CompletionRequest",
                                        tag="openai", stream=True, errors=_UPSTREAM)},
        "/v1/embeddings": {"post": _op("Create embeddings", body="EmbeddingRequest", tag="openai", errors=_UPSTREAM)},
        "/v1/responses": {"post": _op("Create a response (OpenAI's Responses API, any model)",
                                      body="ResponsesRequest", tag="openai", stream=True, errors=_UPSTREAM)},
        "/v1/responses/{response_id}": {"get": _op("A stored response", tag="openai", params=[_RESPONSE]),
                                        "delete": _op("Delete a stored response", tag="openai",
                                                      params=[_RESPONSE])},
        "/v1/responses/{response_id}/input_items": {"get": _op("The input items of a stored response",
                                                               tag="openai", params=[_RESPONSE])},
        "/v1/messages": {"post": _op("Create a message (Anthropic dialect, any model); errors use Anthropic's "
                                     "envelope", body="MessagesRequest", tag="anthropic", stream=True,
                                     errors=_UPSTREAM)},
        "/v1/messages/count_tokens": {"post": _op("Count input tokens (exact from Anthropic providers, estimated "
                                                  "otherwise)", body="CountTokensRequest", tag="anthropic",
                                                  errors=_UPSTREAM)},
        "/v1/images/generations": {"post": _op("Generate images (priced per image)", body="ImageGenerationRequest",
                                               tag="openai", errors=_UPSTREAM)},
        "/v1/audio/transcriptions": {"post": _op("Transcribe audio: multipart/form-data with file, model, "
                                                 "response_format... (priced per audio minute)", tag="openai",
                                                 multipart="TranscriptionRequest", errors=_UPSTREAM)},
        "/v1/models": {"get": _op("List catalog models (a top-level array, or the OpenAI list envelope with "
                                  "?format=openai)", tag="openai", secured=False, params=[
                                      _q("input", "Comma-separated input modalities the model must accept"),
                                      _q("output", "Comma-separated output modalities the model must produce"),
                                      _q("format", "openai (list envelope) or array",
                                         {"type": "string", "enum": ["openai", "array"]})])},
        "/v1/models/{model}": {"get": _op("One catalog model", tag="openai", secured=False,
                                          params=[_path("model", "Model id")])},
        "/v1/balance": {"get": _op("The account's balance, spend today and this month, alert settings (admin "
                                   "keys: ?account_id=)", tag="accounts",
                                   params=[_q("account_id", "Admin keys: the account to show")])},
        "/v1/balance/alerts": {"post": _op("Set the account's low-balance thresholds and webhook (https, public "
                                           "address)", body="AlertsBody", tag="accounts",
                                           params=[_q("account_id", "Admin keys: the account to change")])},
        "/v1/usage/records": {"get": _op("Usage records, newest first; an account key sees its own account",
                                         tag="usage", params=[*_USAGE_FILTERS,
                                                              _q("limit", "Page size (1-500)",
                                                                 {"type": "integer", "minimum": 1, "maximum": 500}),
                                                              _q("cursor", "next_cursor of the previous page")])},
        "/v1/usage/records/{record_id}": {"get": _op("One usage record, with its payload when it was sent with "
                                                     "observability", tag="usage",
                                                     params=[_path("record_id", "Record (request) id")])},
        "/v1/usage/aggregate": {"get": _op("Requests, errors, tokens, cost, latency and TTFT percentiles",
                                           tag="usage", params=[*_USAGE_FILTERS,
                                                                _q("group_by", "Up to two of app, model, provider, "
                                                                   "key, account, hour, day (comma-separated)"),
                                                                _q("percentiles", "false to skip percentiles",
                                                                   {"type": "boolean"})])},
        "/v1/router": {"post": _op("Semantic routing: pick the model for a chat request (and, with execute, "
                                   "serve it)", body="RouterRequest", tag="router", stream=True,
                                   errors=_UPSTREAM)},
        "/v1/router/chat/completions": {"post": _op("Semantic routing, OpenAI chat-completions shaped",
                                                    body="RouterRequest", tag="router", stream=True,
                                                    errors=_UPSTREAM)},
        "/v1/router/profiles": {"get": _op("The router's model profiles", tag="router")},
        "/v1/feedback": {"post": _op("A quality score for a logged request (feeds the router)",
                                     body="FeedbackRequest", tag="router")},
        "/v1/providers": {"get": _op("Providers with their live health (breakers, latency, throughput)",
                                     tag="ops")},
        "/": {"get": _op("Root: a short description of the gateway", tag="ops", secured=False, errors=())},
        "/health": {"get": _op("Liveness", tag="ops", secured=False, errors=("503",))},
        "/ready": {"get": _op("Readiness: 503 while the database is unreachable", tag="ops", secured=False,
                              errors=("503",))},
        "/metrics": {"get": _op("Prometheus metrics (admin key unless metrics_public)", tag="ops",
                                ok={"type": "string"}, errors=("401", "403"))},
        "/openapi.json": {"get": _op("This document", tag="ops", secured=False, errors=())},
        "/admin/accounts": {"get": _op("List accounts", tag="admin"),
                            "post": _op("Create an account", body="NewAccount", tag="admin", ok_status="201")},
        **{f"/admin/accounts/{{account_id}}/{kind}": op for kind, op in ledger_entry.items()},
        "/admin/accounts/{account_id}/ledger": {"get": _op("An account's ledger entries, newest first",
                                                           tag="admin", params=[_ACCOUNT])},
        "/admin/accounts/{account_id}/limits": {"put": _op("Set an account's requests and tokens per minute "
                                                           "(omitted: unlimited)", body="LimitsBody", tag="admin",
                                                           params=[_ACCOUNT])},
        "/admin/accounts/{account_id}/alerts": {"put": _op("Set an account's low-balance alerts", body="AlertsBody",
                                                           tag="admin", params=[_ACCOUNT])},
        "/admin/keys": {"get": _op("List keys", tag="admin", params=[_q("account_id", "Only this account")]),
                        "post": _op("Create a key (the secret is shown once)", body="NewKey", tag="admin",
                                    ok_status="201")},
        "/admin/keys/{key_id}": {"delete": _op("Revoke a key", tag="admin", params=[_KEY])},
        "/admin/keys/{key_id}/revoke": {"post": _op("Revoke a key", tag="admin", params=[_KEY])},
        "/admin/keys/{key_id}/limits": {"put": _op("Set a key's requests and tokens per minute", body="LimitsBody",
                                                   tag="admin", params=[_KEY])},
        "/admin/identities": {
            "get": _op("JWT identities linked to accounts", tag="admin", params=[
                _q("account_id", "Only this account"),
                _q("include_unlinked", "Also unlinked ones", {"type": "boolean"})]),
            "post": _op("Link a JWT identity (issuer + subject) to an account", body="NewIdentity", tag="admin",
                        ok_status="201")},
        "/admin/identities/{identity_id}": {"delete": _op("Unlink a JWT identity", tag="admin",
                                                          params=[_path("identity_id", "Identity id")])},
        "/dashboard": {"get": _html("The dashboard (redirects to Logs)")},
        "/dashboard/": {"get": _html("The dashboard (redirects to Logs)")},
        "/dashboard/login": {"get": _html("Sign-in page", params=[_q("next", "Dashboard path to go to")]),
                             "post": _html("Sign in with a key: sets the session cookie", form={"key": 1, "next": 1})},
        "/dashboard/logout": {"post": _html("Sign out: ends the session")},
        "/dashboard/logs": {"get": _html("Logs", params=[_q(n, n) for n in (
            "app", "model", "provider", "status", "key_id", "from", "to", "account_id", "cursor")])},
        "/dashboard/logs/{record_id}": {"get": _html("Log detail", params=[_path("record_id", "Record id")])},
        "/dashboard/analytics": {"get": _html("Analytics", params=[_q("range", "24h, 7d or 30d"),
                                                                   _q("by", "app, model or provider"),
                                                                   _q("account_id", "Admin: one account")])},
        "/dashboard/models": {"get": _html("Models", params=[_q("input", "Input modality"),
                                                             _q("output", "Output modality"), _q("q", "Search")])},
        "/dashboard/keys": {"get": _html("Keys"),
                            "post": _html("Create a key", form={"csrf": 1, "name": 1, "role": 1, "account_id": 1})},
        "/dashboard/keys/{key_id}/revoke": {"post": _html("Revoke a key", form={"csrf": 1}, params=[_KEY])},
        "/dashboard/balance": {"get": _html("Balance", params=[_q("account_id", "Admin: one account")])},
        "/dashboard/balance/alerts": {"post": _html("Save alert settings", form={
            "csrf": 1, "thresholds": 1, "webhook_url": 1, "account_id": 1})},
        "/dashboard/static/{filename}": {"get": {
            "summary": "Dashboard static files (CSS, JS)", "tags": ["dashboard"], "security": [],
            "parameters": [_path("filename", "File name")],
            "responses": {"200": {"description": "The file"}, "404": {"description": "No such file"}}}},
    }


def _router_request(components: dict[str, Any]) -> dict[str, Any]:
    """The body of POST /v1/router: a chat request whose ``model`` the router chooses, plus RouterFields."""
    chat, extra = components["ChatCompletionRequest"], components.pop("RouterFields")
    props = {k: v for k, v in chat["properties"].items() if k != "model"}
    return {**chat, "title": "RouterRequest", "properties": {**props, **extra["properties"]},
            "required": [r for r in chat.get("required", []) if r != "model"]}


def openapi_document(version: str) -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(
        [ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ImageGenerationRequest, TranscriptionRequest,
         NewAccount, NewKey, MessagesRequest, CountTokensRequest, Amount, LimitsBody, AlertsBody, NewIdentity,
         ResponsesRequest, FeedbackRequest, RouterFields],
        ref_template="#/components/schemas/{name}")
    components["RouterRequest"] = _router_request(components)
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
                 "description": "A self-hosted LLM API gateway speaking the OpenAI and Anthropic dialects."},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "perilune_session"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": _paths(),
    }
