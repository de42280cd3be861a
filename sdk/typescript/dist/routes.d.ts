export interface Route {
    method: "GET" | "POST" | "DELETE";
    /** Below the base URL's /v1. */
    path: string;
    fields?: readonly string[];
    required?: readonly string[];
    /** Body fields the method sets itself (stream, execute, ...). */
    fixed?: readonly string[];
    issue?: number;
}
export declare const ROUTES: readonly Route[];
/** Body fields that a gateway issue in progress adds to routes that exist already. */
export declare const PENDING_FIELDS: Readonly<Record<string, number>>;
