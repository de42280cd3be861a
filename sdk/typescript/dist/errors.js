/**
 * The SDK's error tree, mirroring the gateway's (perilune/errors.py):
 *
 *     PeriluneError
 *     ├── APIConnectionError                 the gateway could not be reached
 *     │   └── APITimeoutError                no answer within the timeout
 *     └── APIError                           the gateway answered with an error (status, code, param, ...)
 *         ├── ClientError                    4xx
 *         │   ├── InvalidRequestError        400 (`param` names the field)
 *         │   ├── AuthenticationError        401
 *         │   ├── InsufficientBalanceError   402
 *         │   ├── PermissionDeniedError      403
 *         │   ├── NotFoundError              404
 *         │   ├── MethodNotAllowedError      405
 *         │   ├── PayloadTooLargeError       413
 *         │   └── RateLimitError             429 (`retryAfter` in seconds)
 *         │       └── UpstreamRateLimitedError   429 from the provider (`upstream` is true)
 *         ├── InternalServerError            500
 *         ├── ServiceUnavailableError        503
 *         └── UpstreamError                  the provider failed the gateway
 *             ├── UpstreamRejectedError      4xx from the provider
 *             ├── UpstreamUnavailableError   502
 *             └── UpstreamTimeoutError       504
 *
 * JavaScript has no multiple inheritance: an upstream 429 is a RateLimitError with `upstream: true`
 * (in the Python SDK it is also an UpstreamError).
 */
export class PeriluneError extends Error {
    name = "PeriluneError";
}
export class APIConnectionError extends PeriluneError {
    name = "APIConnectionError";
}
export class APITimeoutError extends APIConnectionError {
    name = "APITimeoutError";
}
export class APIError extends PeriluneError {
    name = "APIError";
    status;
    type;
    code;
    param;
    /** Seconds to wait before trying again (429 and 503), from the body or `Retry-After`. */
    retryAfter;
    requestId;
    body;
    upstream = false;
    constructor(message, f) {
        super(message);
        this.status = f.status;
        this.type = f.type ?? null;
        this.code = f.code ?? null;
        this.param = f.param ?? null;
        this.retryAfter = f.retryAfter ?? null;
        this.requestId = f.requestId ?? null;
        this.body = f.body;
    }
}
export class ClientError extends APIError {
    name = "ClientError";
}
export class InvalidRequestError extends ClientError {
    name = "InvalidRequestError";
}
export class AuthenticationError extends ClientError {
    name = "AuthenticationError";
}
export class InsufficientBalanceError extends ClientError {
    name = "InsufficientBalanceError";
}
export class PermissionDeniedError extends ClientError {
    name = "PermissionDeniedError";
}
export class NotFoundError extends ClientError {
    name = "NotFoundError";
}
export class MethodNotAllowedError extends ClientError {
    name = "MethodNotAllowedError";
}
export class PayloadTooLargeError extends ClientError {
    name = "PayloadTooLargeError";
}
export class RateLimitError extends ClientError {
    name = "RateLimitError";
}
export class UpstreamRateLimitedError extends RateLimitError {
    name = "UpstreamRateLimitedError";
    upstream = true;
}
export class InternalServerError extends APIError {
    name = "InternalServerError";
}
export class ServiceUnavailableError extends APIError {
    name = "ServiceUnavailableError";
}
export class UpstreamError extends APIError {
    name = "UpstreamError";
    upstream = true;
}
export class UpstreamRejectedError extends UpstreamError {
    name = "UpstreamRejectedError";
}
export class UpstreamUnavailableError extends UpstreamError {
    name = "UpstreamUnavailableError";
}
export class UpstreamTimeoutError extends UpstreamError {
    name = "UpstreamTimeoutError";
}
const BY_STATUS = {
    400: InvalidRequestError, 401: AuthenticationError, 402: InsufficientBalanceError, 403: PermissionDeniedError,
    404: NotFoundError, 405: MethodNotAllowedError, 413: PayloadTooLargeError, 429: RateLimitError,
    500: InternalServerError, 502: UpstreamUnavailableError, 503: ServiceUnavailableError, 504: UpstreamTimeoutError,
};
const BY_CODE = {
    upstream_rejected: UpstreamRejectedError, upstream_rate_limited: UpstreamRateLimitedError,
    upstream_unavailable: UpstreamUnavailableError, upstream_timeout: UpstreamTimeoutError,
    insufficient_balance: InsufficientBalanceError,
};
const STREAM_STATUS = {
    rate_limit_error: 429, timeout_error: 504, upstream_error: 502, overloaded_error: 503,
    invalid_request_error: 400, authentication_error: 401,
};
/** Seconds to wait, from the body's exact `retry_after` or the `Retry-After` header (seconds or a date). */
export function retryAfterSeconds(headers, bodyValue) {
    if (typeof bodyValue === "number" && bodyValue >= 0)
        return bodyValue;
    const value = headers?.get("retry-after");
    if (!value)
        return null;
    const n = Number(value);
    if (Number.isFinite(n))
        return Math.max(0, n);
    const at = Date.parse(value);
    return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}
function str(v) {
    return typeof v === "string" ? v : null;
}
/** The typed error for an error response, in either dialect's envelope. */
export function errorFrom(status, headers, body) {
    const envelope = (body && typeof body === "object" ? body["error"] : null);
    const err = (envelope && typeof envelope === "object" ? envelope : {});
    const code = str(err["code"]);
    const cls = (code && BY_CODE[code]) || BY_STATUS[status] ||
        (status >= 400 && status < 500 ? ClientError : status === 502 || status === 504 ? UpstreamError : APIError);
    return new cls(str(err["message"]) ?? `HTTP ${status}`, {
        status, code, type: str(err["type"]), param: str(err["param"]),
        retryAfter: retryAfterSeconds(headers, err["retry_after"]), requestId: headers?.get("x-request-id") ?? null, body,
    });
}
/** A failure reported inside a stream (after HTTP 200). */
export function streamError(obj) {
    const err = obj["error"];
    const kind = err && typeof err === "object" ? str(err["type"]) : null;
    return errorFrom((kind && STREAM_STATUS[kind]) || 502, null, obj);
}
