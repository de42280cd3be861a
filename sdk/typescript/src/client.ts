import { APIConnectionError, APIError, APITimeoutError, PeriluneError, errorFrom } from "./errors.js";
import { ChatStream, CompletionStream, MessageStream, ResponseStream, type Stream } from "./streams.js";
import type {
  AlertParams, Balance, ChatCompletion, ChatCreateParams, Completion, CompletionCreateParams, CountTokensParams,
  EmbeddingCreateParams, Embeddings, Feedback, FeedbackParams, JSONObject, Message, MessageCreateParams,
  MessageTokenCount, ModelInfo, ModelListParams, ModelProviders, ProviderInfo, ResponseCreateParams, ResponseObject,
  RouterDecision, RouterParams, RouterProfiles, UsageAggregate, UsageAggregateParams, UsageFilter, UsageListParams,
  UsagePage, UsageRecord,
} from "./types.js";
import { VERSION } from "./version.js";

export const DEFAULT_BASE_URL = "http://127.0.0.1:8787/v1";
const DEFAULT_TIMEOUT_MS = 600_000;
const DEFAULT_MAX_RETRIES = 2;
/** A longer Retry-After is thrown to the caller instead of waited out. */
const MAX_RETRY_AFTER_S = 60;
/** The gateway refused before doing (or billing) anything: safe to repeat for any method. */
const RETRY_ANY_METHOD = new Set([429, 503]);
/** The request may have run: only GET and DELETE are repeated. */
const RETRY_IDEMPOTENT = new Set([500, 502, 504]);
const IDEMPOTENT = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

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

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

function retryDelayMs(attempt: number, retryAfter: number | null): number | null {
  if (retryAfter !== null) return retryAfter <= MAX_RETRY_AFTER_S ? retryAfter * 1000 : null;
  return Math.min(8000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.25);
}

function notSent(e: unknown): boolean {
  const code = (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === "string" && NOT_SENT.has(code);
}

/**
 * A client of a perilune gateway. Failures the gateway refused before doing anything (429, 503, no
 * connection) are retried up to `maxRetries` times, honouring `Retry-After`; GET and DELETE also on
 * 500/502/504 and timeouts.
 */
export class Perilune {
  readonly baseURL: string;
  readonly appId: string | undefined;
  readonly chat = new Chat(this);
  readonly completions = new Completions(this);
  readonly embeddings = new EmbeddingsAPI(this);
  readonly messages = new Messages(this);
  readonly responses = new Responses(this);
  readonly models = new Models(this);
  readonly providers = new Providers(this);
  readonly router = new Router(this);
  readonly balance = new BalanceAPI(this);
  readonly usage = new UsageAPI(this);
  readonly feedback = new FeedbackAPI(this);
  private readonly apiKey: string;
  private readonly timeout: number;
  private readonly maxRetries: number;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const key = options.apiKey ?? env("PERILUNE_API_KEY");
    if (!key) throw new PeriluneError("No API key: pass { apiKey } or set PERILUNE_API_KEY.");
    this.apiKey = key;
    this.baseURL = (options.baseURL ?? env("PERILUNE_BASE_URL") ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.appId = options.appId;
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.headers = { ...options.defaultHeaders };
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** A client with other defaults (same key and base URL). */
  withOptions(options: Omit<ClientOptions, "apiKey" | "baseURL">): Perilune {
    return new Perilune({ apiKey: this.apiKey, baseURL: this.baseURL, appId: this.appId, timeout: this.timeout,
      maxRetries: this.maxRetries, defaultHeaders: this.headers, fetch: this.fetchFn, ...options });
  }

  /** One HTTP exchange with retries. For streams the timeout covers the response head only. */
  async send(method: string, path: string, body: JSONObject | undefined, query: Query | undefined,
    opts: RequestOptions = {}, stream = false): Promise<{ response: Response; controller: AbortController }> {
    const url = new URL(this.baseURL + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined || v === null) continue;
      url.searchParams.set(k, Array.isArray(v) ? v.join(",") : String(v));
    }
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.apiKey}`, Accept: stream ? "text/event-stream" : "application/json",
      "X-Perilune-SDK": `typescript/${VERSION}`, ...this.headers, ...opts.headers,
    };
    const appId = opts.appId ?? this.appId;
    if (appId) headers["X-App-ID"] = appId;
    let payload: string | undefined;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify({ ...body, ...opts.extraBody });
    }
    const retries = opts.maxRetries ?? this.maxRetries;
    const timeout = opts.timeout ?? this.timeout;
    for (let attempt = 0; ; attempt++) {
      const controller = new AbortController();
      const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; controller.abort(); }, timeout);
      let failure: PeriluneError;
      let safe: boolean;
      try {
        const response = await this.fetchFn(url, { method, headers, body: payload, signal });
        if (response.ok) {
          if (!stream) {
            const text = await response.text();
            clearTimeout(timer);
            return { response: new Response(text, { status: response.status, headers: response.headers }),
              controller };
          }
          clearTimeout(timer);
          return { response, controller };
        }
        const text = await response.text();
        clearTimeout(timer);
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON: kept as text */ }
        failure = errorFrom(response.status, response.headers, parsed);
        safe = RETRY_ANY_METHOD.has(response.status) || (IDEMPOTENT.has(method) && RETRY_IDEMPOTENT.has(response.status));
      } catch (e) {
        clearTimeout(timer);
        if (opts.signal?.aborted) throw e;
        if (timedOut) {
          failure = new APITimeoutError(`The gateway did not answer within ${timeout} ms.`);
          safe = IDEMPOTENT.has(method);
        } else {
          failure = new APIConnectionError(`Connection to the gateway failed: ${String(e)}`);
          safe = IDEMPOTENT.has(method) || notSent(e);
        }
      }
      const delay = safe && attempt < retries
        ? retryDelayMs(attempt, failure instanceof APIError ? failure.retryAfter : null) : null;
      if (delay === null) throw failure;
      await sleep(delay, opts.signal);
    }
  }

  /** A JSON request and its parsed answer. */
  async json<T>(method: string, path: string, opts?: RequestOptions, body?: JSONObject, query?: Query): Promise<T> {
    const { response } = await this.send(method, path, body, query, opts);
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new APIError(`The gateway answered HTTP ${response.status} with a body that is not JSON.`,
        { status: response.status, requestId: response.headers.get("x-request-id"), body: text });
    }
  }

  async stream<S extends Stream<unknown>>(kind: new (r: Response, c: AbortController) => S, path: string,
    body: JSONObject, opts?: RequestOptions): Promise<S> {
    const { response, controller } = await this.send("POST", path, body, undefined, opts, true);
    return new kind(response, controller);
  }
}

function asBody(params: object): JSONObject {
  return { ...params } as JSONObject;
}

const INCLUDE_USAGE = { stream: true, stream_options: { include_usage: true } };

class Resource {
  constructor(protected readonly client: Perilune) {}
}

function listOf<T>(data: unknown, ...keys: string[]): T[] {
  if (Array.isArray(data)) return data as T[];
  if (data && typeof data === "object") {
    for (const k of keys) {
      const v = (data as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v as T[];
    }
  }
  throw new PeriluneError(`expected a list, got ${typeof data}`);
}

class Chat extends Resource {
  /** POST /v1/chat/completions; `usage` carries the cost (USD) and timings (ms). */
  create(params: ChatCreateParams, opts?: RequestOptions): Promise<ChatCompletion> {
    return this.client.json("POST", "/chat/completions", opts, asBody(params));
  }

  /** Streamed chat: `for await` the chunks; `.usage` holds the final usage and cost. */
  stream(params: ChatCreateParams, opts?: RequestOptions): Promise<ChatStream> {
    return this.client.stream(ChatStream, "/chat/completions", { ...asBody(params), ...INCLUDE_USAGE }, opts);
  }
}

class Completions extends Resource {
  create(params: CompletionCreateParams, opts?: RequestOptions): Promise<Completion> {
    return this.client.json("POST", "/completions", opts, asBody(params));
  }

  stream(params: CompletionCreateParams, opts?: RequestOptions): Promise<CompletionStream> {
    return this.client.stream(CompletionStream, "/completions", { ...asBody(params), ...INCLUDE_USAGE }, opts);
  }
}

class EmbeddingsAPI extends Resource {
  create(params: EmbeddingCreateParams, opts?: RequestOptions): Promise<Embeddings> {
    return this.client.json("POST", "/embeddings", opts, asBody(params));
  }
}

/** The Anthropic Messages dialect, reaching any model the gateway serves. */
class Messages extends Resource {
  create(params: MessageCreateParams, opts?: RequestOptions): Promise<Message> {
    return this.client.json("POST", "/messages", opts, asBody(params));
  }

  stream(params: MessageCreateParams, opts?: RequestOptions): Promise<MessageStream> {
    return this.client.stream(MessageStream, "/messages", { ...asBody(params), stream: true }, opts);
  }

  countTokens(params: CountTokensParams, opts?: RequestOptions): Promise<MessageTokenCount> {
    return this.client.json("POST", "/messages/count_tokens", opts, asBody(params));
  }
}

/** The OpenAI Responses API. */
class Responses extends Resource {
  create(params: ResponseCreateParams, opts?: RequestOptions): Promise<ResponseObject> {
    return this.client.json("POST", "/responses", opts, asBody(params));
  }

  stream(params: ResponseCreateParams, opts?: RequestOptions): Promise<ResponseStream> {
    return this.client.stream(ResponseStream, "/responses", { ...asBody(params), stream: true }, opts);
  }

  retrieve(id: string, opts?: RequestOptions): Promise<ResponseObject> {
    return this.client.json("GET", `/responses/${encodeURIComponent(id)}`, opts);
  }

  delete(id: string, opts?: RequestOptions): Promise<JSONObject> {
    return this.client.json("DELETE", `/responses/${encodeURIComponent(id)}`, opts);
  }

  async inputItems(id: string, opts?: RequestOptions): Promise<JSONObject[]> {
    return listOf(await this.client.json("GET", `/responses/${encodeURIComponent(id)}/input_items`, opts), "data");
  }
}

class Models extends Resource {
  /** The catalog; `{ input: ["text", "image"] }` / `{ output: ["embedding"] }` keep models supporting all. */
  async list(params: ModelListParams = {}, opts?: RequestOptions): Promise<ModelInfo[]> {
    return listOf(await this.client.json("GET", "/models", opts, undefined, { ...params }), "data");
  }

  retrieve(model: string, opts?: RequestOptions): Promise<ModelInfo> {
    return this.client.json("GET", `/models/${encodeURIComponent(model)}`, opts);
  }
}

class Providers extends Resource {
  /** Every configured provider with the models it serves. */
  async list(opts?: RequestOptions): Promise<ProviderInfo[]> {
    return listOf(await this.client.json("GET", "/providers", opts), "data", "providers");
  }

  /** The providers serving `model`, with status and live latency, TTFT, throughput and error rate. */
  forModel(model: string, opts?: RequestOptions): Promise<ModelProviders> {
    return this.client.json("GET", "/providers", opts, undefined, { model });
  }
}

/** The semantic model router (POST /v1/router). */
class Router extends Resource {
  /** Only the decision (`execute: false`): the chosen model and every candidate's score. */
  decide(params: RouterParams, opts?: RequestOptions): Promise<RouterDecision> {
    return this.client.json("POST", "/router", opts, { ...asBody(params), execute: false });
  }

  /** Route and run: a chat completion from the chosen model, with the decision in `.router`. */
  create(params: RouterParams, opts?: RequestOptions): Promise<ChatCompletion> {
    return this.client.json("POST", "/router", opts, { ...asBody(params), execute: true });
  }

  stream(params: RouterParams, opts?: RequestOptions): Promise<ChatStream> {
    return this.client.stream(ChatStream, "/router", { ...asBody(params), execute: true, ...INCLUDE_USAGE }, opts);
  }

  /** Every profiled model (quality per cluster, mean cost), the embedder and the provenance. */
  profiles(opts?: RequestOptions): Promise<RouterProfiles> {
    return this.client.json("GET", "/router/profiles", opts);
  }
}

class BalanceAPI extends Resource {
  /** The key's account: balance, spend today and this month, alert settings. */
  retrieve(opts?: RequestOptions): Promise<Balance> {
    return this.client.json("GET", "/balance", opts);
  }

  /** Low-balance alert thresholds (USD, decimal strings) and the webhook to call. */
  setAlerts(params: AlertParams, opts?: RequestOptions): Promise<Balance> {
    return this.client.json("POST", "/balance/alerts", opts, asBody(params));
  }
}

class UsageRecords extends Resource {
  /** One page of usage records, newest first; `next_cursor` fetches the next. */
  list(params: UsageListParams = {}, opts?: RequestOptions): Promise<UsagePage> {
    return this.client.json("GET", "/usage/records", opts, undefined, { ...params });
  }

  /** Every matching record, newest first, following the cursor page by page. */
  async *iter(params: UsageFilter & { pageSize?: number } = {}, opts?: RequestOptions): AsyncGenerator<UsageRecord> {
    const { pageSize, ...filter } = params;
    let cursor: string | undefined;
    for (;;) {
      const page = await this.list({ ...filter, limit: pageSize, cursor }, opts);
      yield* page.data;
      if (!page.has_more || !page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /** One record, with its stored payload when the request was sent with `observability: true`. */
  retrieve(id: string, opts?: RequestOptions): Promise<UsageRecord> {
    return this.client.json("GET", `/usage/records/${encodeURIComponent(id)}`, opts);
  }
}

class UsageAPI extends Resource {
  readonly records = new UsageRecords(this.client);

  /** Requests, errors, tokens, cost and latency/TTFT percentiles grouped by app, model, provider, key,
   * account, hour or day (at most two). */
  aggregate(params: UsageAggregateParams = {}, opts?: RequestOptions): Promise<UsageAggregate> {
    return this.client.json("GET", "/usage/aggregate", opts, undefined, { ...params });
  }
}

class FeedbackAPI extends Resource {
  /** Attach a quality score in [0, 1] to a logged request. */
  create(params: FeedbackParams, opts?: RequestOptions): Promise<Feedback> {
    return this.client.json("POST", "/feedback", opts, asBody(params));
  }
}
