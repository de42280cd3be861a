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
export declare class PeriluneError extends Error {
    name: string;
}
export declare class APIConnectionError extends PeriluneError {
    name: string;
}
export declare class APITimeoutError extends APIConnectionError {
    name: string;
}
export interface APIErrorFields {
    status: number;
    type?: string | null;
    code?: string | null;
    param?: string | null;
    retryAfter?: number | null;
    requestId?: string | null;
    body?: unknown;
}
export declare class APIError extends PeriluneError {
    name: string;
    readonly status: number;
    readonly type: string | null;
    readonly code: string | null;
    readonly param: string | null;
    /** Seconds to wait before trying again (429 and 503), from the body or `Retry-After`. */
    readonly retryAfter: number | null;
    readonly requestId: string | null;
    readonly body: unknown;
    readonly upstream: boolean;
    constructor(message: string, f: APIErrorFields);
}
export declare class ClientError extends APIError {
    name: string;
}
export declare class InvalidRequestError extends ClientError {
    name: string;
}
export declare class AuthenticationError extends ClientError {
    name: string;
}
export declare class InsufficientBalanceError extends ClientError {
    name: string;
}
export declare class PermissionDeniedError extends ClientError {
    name: string;
}
export declare class NotFoundError extends ClientError {
    name: string;
}
export declare class MethodNotAllowedError extends ClientError {
    name: string;
}
export declare class PayloadTooLargeError extends ClientError {
    name: string;
}
export declare class RateLimitError extends ClientError {
    name: string;
}
export declare class UpstreamRateLimitedError extends RateLimitError {
    name: string;
    readonly upstream = true;
}
export declare class InternalServerError extends APIError {
    name: string;
}
export declare class ServiceUnavailableError extends APIError {
    name: string;
}
export declare class UpstreamError extends APIError {
    name: string;
    readonly upstream = true;
}
export declare class UpstreamRejectedError extends UpstreamError {
    name: string;
}
export declare class UpstreamUnavailableError extends UpstreamError {
    name: string;
}
export declare class UpstreamTimeoutError extends UpstreamError {
    name: string;
}
/** Seconds to wait, from the body's exact `retry_after` or the `Retry-After` header (seconds or a date). */
export declare function retryAfterSeconds(headers: Headers | null, bodyValue: unknown): number | null;
/** The typed error for an error response, in either dialect's envelope. */
export declare function errorFrom(status: number, headers: Headers | null, body: unknown): APIError;
/** A failure reported inside a stream (after HTTP 200). */
export declare function streamError(obj: Record<string, unknown>): APIError;
