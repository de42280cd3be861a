"""The SDK's error tree, mirroring the gateway's (``perilune/errors.py``)::

    PeriluneError
    ├── APIConnectionError                 the gateway could not be reached
    │   └── APITimeoutError                no answer within the client's timeout
    └── APIError                           the gateway answered with an error (status, code, param, ...)
        ├── ClientError                    4xx
        │   ├── InvalidRequestError        400 (``param`` names the field)
        │   ├── AuthenticationError        401
        │   ├── InsufficientBalanceError   402
        │   ├── PermissionDeniedError      403
        │   ├── NotFoundError              404
        │   ├── MethodNotAllowedError      405
        │   ├── PayloadTooLargeError       413
        │   └── RateLimitError             429 (``retry_after`` in seconds)
        ├── InternalServerError            500
        ├── ServiceUnavailableError        503 (e.g. limits store down: fail closed)
        └── UpstreamError                  the provider failed the gateway
            ├── UpstreamRejectedError      4xx from the provider
            ├── UpstreamRateLimitedError   429 from the provider (also a RateLimitError)
            ├── UpstreamUnavailableError   502
            └── UpstreamTimeoutError       504
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "ClientError",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PeriluneError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UpstreamError",
    "UpstreamRateLimitedError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class PeriluneError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(PeriluneError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class APIError(PeriluneError):
    """The gateway answered with an error status; its envelope's fields are attributes."""

    def __init__(self, message: str, *, status: int, type: str | None = None, code: str | None = None,
                 param: str | None = None, retry_after: float | None = None, request_id: str | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        where = f" (param {self.param!r})" if self.param else ""
        return f"{self.status} {self.code or self.type or 'error'}: {self.message}{where}"


class ClientError(APIError):
    pass


class InvalidRequestError(ClientError):
    pass


class AuthenticationError(ClientError):
    pass


class InsufficientBalanceError(ClientError):
    pass


class PermissionDeniedError(ClientError):
    pass


class NotFoundError(ClientError):
    pass


class MethodNotAllowedError(ClientError):
    pass


class PayloadTooLargeError(ClientError):
    pass


class RateLimitError(ClientError):
    pass


class InternalServerError(APIError):
    pass


class ServiceUnavailableError(APIError):
    pass


class UpstreamError(APIError):
    pass


class UpstreamRejectedError(UpstreamError):
    pass


class UpstreamRateLimitedError(UpstreamError, RateLimitError):
    pass


class UpstreamUnavailableError(UpstreamError):
    pass


class UpstreamTimeoutError(UpstreamError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError, 401: AuthenticationError, 402: InsufficientBalanceError,
    403: PermissionDeniedError, 404: NotFoundError, 405: MethodNotAllowedError, 413: PayloadTooLargeError,
    429: RateLimitError, 500: InternalServerError, 502: UpstreamUnavailableError,
    503: ServiceUnavailableError, 504: UpstreamTimeoutError,
}
_BY_CODE: dict[str, type[APIError]] = {
    "upstream_rejected": UpstreamRejectedError, "upstream_rate_limited": UpstreamRateLimitedError,
    "upstream_unavailable": UpstreamUnavailableError, "upstream_timeout": UpstreamTimeoutError,
    "insufficient_balance": InsufficientBalanceError,
}


def retry_after_s(headers: Mapping[str, str], body_value: Any = None) -> float | None:
    """Seconds to wait, from the body's ``retry_after`` (exact) or the ``Retry-After`` header."""
    if isinstance(body_value, int | float) and not isinstance(body_value, bool) and body_value >= 0:
        return float(body_value)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from(status: int, headers: Mapping[str, str], body: Any) -> APIError:
    """The typed error for an error response, in either dialect's envelope."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {}
    message = str(err.get("message") or f"HTTP {status}")
    code = err.get("code") if isinstance(err.get("code"), str) else None
    kind = err.get("type") if isinstance(err.get("type"), str) else None
    param = err.get("param") if isinstance(err.get("param"), str) else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = ClientError if 400 <= status < 500 else UpstreamError if status in (502, 504) else APIError
    return cls(message, status=status, type=kind, code=code, param=param,
               retry_after=retry_after_s(headers, err.get("retry_after")),
               request_id=headers.get("x-request-id"), body=body)
