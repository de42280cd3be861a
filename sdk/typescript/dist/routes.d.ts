export interface Route {
    method: "GET" | "POST" | "DELETE";
    /** Below the base URL's /v1. */
    path: string;
    fields?: readonly string[];
    required?: readonly string[];
    /** Body fields the method sets itself (stream, execute, ...). */
    fixed?: readonly string[];
}
export declare const ROUTES: readonly Route[];
