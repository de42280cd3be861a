"""The one error tree of perilune.

Every failure a client can see is a :class:`PeriluneError`. Each class knows its HTTP status, its
OpenAI ``type``/``code`` and its Anthropic ``type``, so a handler only ever raises and the app renders
the envelope of the caller's dialect::

    PeriluneError                      500 server_error / api_error
    ├── ClientError                    4xx: the request cannot be served as sent
    │   ├── InvalidRequest             400 invalid_request_error (param names the field)
    │   │   ├── MalformedJSON          400 body is not JSON
    │   │   ├── Unsupported            400 a feature the chosen provider cannot do
    │   │   └── ProviderNotConfigured  400 model known, but no provider for it has a key
    │   ├── AuthenticationFailed       401 missing / invalid / revoked / expired key
    │   ├── InsufficientBalance        402 prepaid balance cannot cover the request
    │   ├── PermissionDenied           403 e.g. an account key on an admin route
    │   ├── NotFound                   404 unknown route, unknown or disabled model (param "model")
    │   ├── MethodNotAllowed           405
    │   ├── PayloadTooLarge            413
    │   └── RateLimited                429 perilune's own limits (retry_after)
    ├── ServiceUnavailable             503 a store perilune needs is down: fail closed
    │   ├── LimitsUnavailable          503 limits_unavailable: Redis (limits, balances) unreachable
    │   ├── StoreUnavailable           503 database_unavailable: the database did not answer in time
    │   └── ServerShuttingDown         503 server_shutdown: the server closed the request while stopping
    └── UpstreamError                  the provider failed us
        ├── UpstreamRejected           4xx the provider refused the request (status passed on)
        ├── UpstreamRateLimited        429 with Retry-After
        ├── UpstreamUnavailable        502 5xx, refused or dropped connection, bad payload
        └── UpstreamTimeout            504 connect / first byte / total timeout

Third-party exceptions are translated into this tree in exactly one place each: socket, TLS and
timeout errors of the upstream client in :mod:`perilune._http`, msgspec in :mod:`perilune.schema.openai`,
SQLAlchemy and psycopg in :mod:`perilune.store.db`, Redis (and the transport errors under it) in
:mod:`perilune.limits.redis`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

__all__ = [
    "AuthenticationFailed",
    "ClientError",
    "InsufficientBalance",
    "InvalidRequest",
    "LimitsUnavailable",
    "MalformedJSON",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PeriluneError",
    "PermissionDenied",
    "ProviderNotConfigured",
    "RateLimited",
    "ServerShuttingDown",
    "ServiceUnavailable",
    "StoreUnavailable",
    "Unsupported",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class PeriluneError(Exception):
    status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "server_error"
    anthropic_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False  # may a fallback deployment be tried?

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after_s = retry_after_s
        self.status_code = status or self.status

    def openai_body(self) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": self.message,
            "type": self.openai_type,
            "param": self.param,
            "code": self.code,
        }
        if self.retry_after_s is not None:
            err["retry_after"] = self.retry_after_s
        return {"error": err}

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after_s)))}

    def render(self, dialect: str = "openai") -> bytes:
        body = self.anthropic_body() if dialect == "anthropic" else self.openai_body()
        return orjson.dumps(body)

    @property
    def kind(self) -> str:
        """Short machine name recorded in usage records (``error_type``)."""
        return self.code or self.openai_type


class ClientError(PeriluneError):
    status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class InvalidRequest(ClientError):
    pass


class MalformedJSON(InvalidRequest):
    default_code = "invalid_json"


class Unsupported(InvalidRequest):
    default_code = "unsupported"


class ProviderNotConfigured(InvalidRequest):
    default_code = "provider_not_configured"


class AuthenticationFailed(ClientError):
    status = 401
    openai_type = "authentication_error"
    anthropic_type = "authentication_error"
    default_code = "invalid_api_key"


class InsufficientBalance(ClientError):
    status = 402
    openai_type = "insufficient_quota"
    anthropic_type = "billing_error"
    default_code = "insufficient_balance"


class PermissionDenied(ClientError):
    status = 403
    openai_type = "permission_error"
    anthropic_type = "permission_error"
    default_code = "permission_denied"


class NotFound(ClientError):
    status = 404
    openai_type = "not_found_error"
    anthropic_type = "not_found_error"
    default_code = "not_found"


class MethodNotAllowed(ClientError):
    status = 405
    default_code = "method_not_allowed"

    def __init__(self, message: str, *, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class PayloadTooLarge(ClientError):
    status = 413
    anthropic_type = "request_too_large"
    default_code = "request_too_large"


class RateLimited(ClientError):
    status = 429
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServiceUnavailable(PeriluneError):
    status = 503
    openai_type = "service_unavailable"
    anthropic_type = "overloaded_error"
    default_code = "service_unavailable"


class LimitsUnavailable(ServiceUnavailable):
    default_code = "limits_unavailable"


class StoreUnavailable(ServiceUnavailable):
    default_code = "database_unavailable"


class ServerShuttingDown(ServiceUnavailable):
    default_code = "server_shutdown"


class UpstreamError(PeriluneError):
    status = 502
    openai_type = "upstream_error"
    anthropic_type = "api_error"
    default_code = "upstream_error"
    retryable = True


class UpstreamRejected(UpstreamError):
    """The provider answered 4xx (other than 429): the request itself is at fault."""

    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    default_code = "upstream_rejected"
    retryable = False


class UpstreamRateLimited(UpstreamError):
    status = 429
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    default_code = "upstream_rate_limited"


class UpstreamUnavailable(UpstreamError):
    status = 502
    anthropic_type = "api_error"
    default_code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    openai_type = "timeout_error"
    anthropic_type = "timeout_error"
    default_code = "upstream_timeout"
