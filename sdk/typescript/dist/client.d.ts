import { ChatStream, CompletionStream, MessageStream, ResponseStream, type Stream } from "./streams.js";
import type { AlertParams, Balance, ChatCompletion, ChatCreateParams, Completion, CompletionCreateParams, CountTokensParams, EmbeddingCreateParams, Embeddings, Feedback, FeedbackParams, JSONObject, Message, MessageCreateParams, MessageTokenCount, ModelInfo, ModelListParams, ModelProviders, ProviderInfo, ResponseCreateParams, ResponseObject, RouterDecision, RouterParams, RouterProfiles, UsageAggregate, UsageAggregateParams, UsageFilter, UsageListParams, UsagePage, UsageRecord } from "./types.js";
export declare const DEFAULT_BASE_URL = "http://127.0.0.1:8787/v1";
export interface ClientOptions {
    /** Default: `PERILUNE_API_KEY` where `process.env` exists. */
    apiKey?: string;
    /** Default: `PERILUNE_BASE_URL`, else http://127.0.0.1:8787/v1. */
    baseURL?: string;
    /** Sent as `X-App-ID` on every call (a call's own `appId` wins); shows as `app` in the usage log. */
    appId?: string;
    /** Milliseconds until the response head (streams) or the whole response (JSON). */
    timeout?: number;
    maxRetries?: number;
    defaultHeaders?: Record<string, string>;
    /** A fetch implementation (default: the global one). */
    fetch?: typeof fetch;
}
export interface RequestOptions {
    appId?: string;
    timeout?: number;
    maxRetries?: number;
    headers?: Record<string, string>;
    signal?: AbortSignal;
    /** Merged into the JSON body (for fields this SDK does not know yet). */
    extraBody?: JSONObject;
}
type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;
/**
 * A client of a perilune gateway. Failures the gateway refused before doing anything (429, 503, no
 * connection) are retried up to `maxRetries` times, honouring `Retry-After`; GET and DELETE also on
 * 500/502/504 and timeouts.
 */
export declare class Perilune {
    readonly baseURL: string;
    readonly appId: string | undefined;
    readonly chat: Chat;
    readonly completions: Completions;
    readonly embeddings: EmbeddingsAPI;
    readonly messages: Messages;
    readonly responses: Responses;
    readonly models: Models;
    readonly providers: Providers;
    readonly router: Router;
    readonly balance: BalanceAPI;
    readonly usage: UsageAPI;
    readonly feedback: FeedbackAPI;
    private readonly apiKey;
    private readonly timeout;
    private readonly maxRetries;
    private readonly headers;
    private readonly fetchFn;
    constructor(options?: ClientOptions);
    /** A client with other defaults (same key and base URL). */
    withOptions(options: Omit<ClientOptions, "apiKey" | "baseURL">): Perilune;
    /** One HTTP exchange with retries. For streams the timeout covers the response head only. */
    send(method: string, path: string, body: JSONObject | undefined, query: Query | undefined, opts?: RequestOptions, stream?: boolean): Promise<{
        response: Response;
        controller: AbortController;
    }>;
    /** A JSON request and its parsed answer. */
    json<T>(method: string, path: string, opts?: RequestOptions, body?: JSONObject, query?: Query): Promise<T>;
    stream<S extends Stream<unknown>>(kind: new (r: Response, c: AbortController) => S, path: string, body: JSONObject, opts?: RequestOptions): Promise<S>;
}
declare class Resource {
    protected readonly client: Perilune;
    constructor(client: Perilune);
}
declare class Chat extends Resource {
    /** POST /v1/chat/completions; `usage` carries the cost (USD) and timings (ms). */
    create(params: ChatCreateParams, opts?: RequestOptions): Promise<ChatCompletion>;
    /** Streamed chat: `for await` the chunks; `.usage` holds the final usage and cost. */
    stream(params: ChatCreateParams, opts?: RequestOptions): Promise<ChatStream>;
}
declare class Completions extends Resource {
    create(params: CompletionCreateParams, opts?: RequestOptions): Promise<Completion>;
    stream(params: CompletionCreateParams, opts?: RequestOptions): Promise<CompletionStream>;
}
declare class EmbeddingsAPI extends Resource {
    create(params: EmbeddingCreateParams, opts?: RequestOptions): Promise<Embeddings>;
}
/** The Anthropic Messages dialect, reaching any model the gateway serves. */
declare class Messages extends Resource {
    create(params: MessageCreateParams, opts?: RequestOptions): Promise<Message>;
    stream(params: MessageCreateParams, opts?: RequestOptions): Promise<MessageStream>;
    countTokens(params: CountTokensParams, opts?: RequestOptions): Promise<MessageTokenCount>;
}
/** The OpenAI Responses API. */
declare class Responses extends Resource {
    create(params: ResponseCreateParams, opts?: RequestOptions): Promise<ResponseObject>;
    stream(params: ResponseCreateParams, opts?: RequestOptions): Promise<ResponseStream>;
    retrieve(id: string, opts?: RequestOptions): Promise<ResponseObject>;
    delete(id: string, opts?: RequestOptions): Promise<JSONObject>;
    inputItems(id: string, opts?: RequestOptions): Promise<JSONObject[]>;
}
declare class Models extends Resource {
    /** The catalog; `{ input: ["text", "image"] }` / `{ output: ["embedding"] }` keep models supporting all. */
    list(params?: ModelListParams, opts?: RequestOptions): Promise<ModelInfo[]>;
    retrieve(model: string, opts?: RequestOptions): Promise<ModelInfo>;
}
declare class Providers extends Resource {
    /** Every configured provider with the models it serves. */
    list(opts?: RequestOptions): Promise<ProviderInfo[]>;
    /** The providers serving `model`, with status and live latency, TTFT, throughput and error rate. */
    forModel(model: string, opts?: RequestOptions): Promise<ModelProviders>;
}
/** The semantic model router (POST /v1/router). */
declare class Router extends Resource {
    /** Only the decision (`execute: false`): the chosen model and every candidate's score. */
    decide(params: RouterParams, opts?: RequestOptions): Promise<RouterDecision>;
    /** Route and run: a chat completion from the chosen model, with the decision in `.router`. */
    create(params: RouterParams, opts?: RequestOptions): Promise<ChatCompletion>;
    stream(params: RouterParams, opts?: RequestOptions): Promise<ChatStream>;
    /** Every profiled model (quality per cluster, mean cost), the embedder and the provenance. */
    profiles(opts?: RequestOptions): Promise<RouterProfiles>;
}
declare class BalanceAPI extends Resource {
    /** The key's account: balance, spend today and this month, alert settings. */
    retrieve(opts?: RequestOptions): Promise<Balance>;
    /** Low-balance alert thresholds (USD, decimal strings) and the webhook to call. */
    setAlerts(params: AlertParams, opts?: RequestOptions): Promise<Balance>;
}
declare class UsageRecords extends Resource {
    /** One page of usage records, newest first; `next_cursor` fetches the next. */
    list(params?: UsageListParams, opts?: RequestOptions): Promise<UsagePage>;
    /** Every matching record, newest first, following the cursor page by page. */
    iter(params?: UsageFilter & {
        pageSize?: number;
    }, opts?: RequestOptions): AsyncGenerator<UsageRecord>;
    /** One record, with its stored payload when the request was sent with `observability: true`. */
    retrieve(id: string, opts?: RequestOptions): Promise<UsageRecord>;
}
declare class UsageAPI extends Resource {
    readonly records: UsageRecords;
    /** Requests, errors, tokens, cost and latency/TTFT percentiles grouped by app, model, provider, key,
     * account, hour or day (at most two). */
    aggregate(params?: UsageAggregateParams, opts?: RequestOptions): Promise<UsageAggregate>;
}
declare class FeedbackAPI extends Resource {
    /** Attach a quality score in [0, 1] to a logged request. */
    create(params: FeedbackParams, opts?: RequestOptions): Promise<Feedback>;
}
export {};
