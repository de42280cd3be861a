"""perilune's first-party SDK: sync (:class:`Perilune`) and async (:class:`AsyncPerilune`) clients for
every route of the gateway, with cost and timings as typed fields and errors as typed exceptions."""

from perilune_sdk import types
from perilune_sdk._async_client import AsyncPerilune
from perilune_sdk._client import Perilune
from perilune_sdk._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ClientError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PeriluneError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from perilune_sdk._streams import (
    AsyncChatStream,
    AsyncCompletionStream,
    AsyncMessageStream,
    AsyncResponseStream,
    ChatStream,
    CompletionStream,
    MessageStream,
    ResponseStream,
)
from perilune_sdk._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncCompletionStream",
    "AsyncMessageStream",
    "AsyncPerilune",
    "AsyncResponseStream",
    "AuthenticationError",
    "ChatStream",
    "ClientError",
    "CompletionStream",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidRequestError",
    "MessageStream",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Perilune",
    "PeriluneError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseStream",
    "ServiceUnavailableError",
    "UpstreamError",
    "UpstreamRateLimitedError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "__version__",
    "types",
]
