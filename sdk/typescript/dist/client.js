import { APIConnectionError, APIError, APITimeoutError, PeriluneError, errorFrom } from "./errors.js";
import { ChatStream, CompletionStream, MessageStream, ResponseStream } from "./streams.js";
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
function env(name) {
    const proc = globalThis.process;
    return proc?.env?.[name];
}
function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        signal?.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
    });
}
function retryDelayMs(attempt, retryAfter) {
    if (retryAfter !== null)
        return retryAfter <= MAX_RETRY_AFTER_S ? retryAfter * 1000 : null;
    return Math.min(8000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.25);
}
function notSent(e) {
    const code = e?.cause?.code;
    return typeof code === "string" && NOT_SENT.has(code);
}
/**
 * A client of a perilune gateway. Failures the gateway refused before doing anything (429, 503, no
 * connection) are retried up to `maxRetries` times, honouring `Retry-After`; GET and DELETE also on
 * 500/502/504 and timeouts.
 */
export class Perilune {
    baseURL;
    appId;
    chat = new Chat(this);
    completions = new Completions(this);
    embeddings = new EmbeddingsAPI(this);
    messages = new Messages(this);
    responses = new Responses(this);
    models = new Models(this);
    providers = new Providers(this);
    router = new Router(this);
    balance = new BalanceAPI(this);
    usage = new UsageAPI(this);
    feedback = new FeedbackAPI(this);
    apiKey;
    timeout;
    maxRetries;
    headers;
    fetchFn;
    constructor(options = {}) {
        const key = options.apiKey ?? env("PERILUNE_API_KEY");
        if (!key)
            throw new PeriluneError("No API key: pass { apiKey } or set PERILUNE_API_KEY.");
        this.apiKey = key;
        this.baseURL = (options.baseURL ?? env("PERILUNE_BASE_URL") ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
        this.appId = options.appId;
        this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
        this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
        this.headers = { ...options.defaultHeaders };
        this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    }
    /** A client with other defaults (same key and base URL). */
    withOptions(options) {
        return new Perilune({ apiKey: this.apiKey, baseURL: this.baseURL, appId: this.appId, timeout: this.timeout,
            maxRetries: this.maxRetries, defaultHeaders: this.headers, fetch: this.fetchFn, ...options });
    }
    /** One HTTP exchange with retries. For streams the timeout covers the response head only. */
    async send(method, path, body, query, opts = {}, stream = false) {
        const url = new URL(this.baseURL + path);
        for (const [k, v] of Object.entries(query ?? {})) {
            if (v === undefined || v === null)
                continue;
            url.searchParams.set(k, Array.isArray(v) ? v.join(",") : String(v));
        }
        const headers = {
            Authorization: `Bearer ${this.apiKey}`, Accept: stream ? "text/event-stream" : "application/json",
            "X-Perilune-SDK": `typescript/${VERSION}`, ...this.headers, ...opts.headers,
        };
        const appId = opts.appId ?? this.appId;
        if (appId)
            headers["X-App-ID"] = appId;
        let payload;
        if (body !== undefined) {
            headers["Content-Type"] = "application/json";
            payload = JSON.stringify({ ...body, ...opts.extraBody });
        }
        const retries = opts.maxRetries ?? this.maxRetries;
        const timeout = opts.timeout ?? this.timeout;
        for (let attempt = 0;; attempt++) {
            const controller = new AbortController();
            const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
            let timedOut = false;
            const timer = setTimeout(() => { timedOut = true; controller.abort(); }, timeout);
            let failure;
            let safe;
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
                let parsed = text;
                try {
                    parsed = JSON.parse(text);
                }
                catch { /* not JSON: kept as text */ }
                failure = errorFrom(response.status, response.headers, parsed);
                safe = RETRY_ANY_METHOD.has(response.status) || (IDEMPOTENT.has(method) && RETRY_IDEMPOTENT.has(response.status));
            }
            catch (e) {
                clearTimeout(timer);
                if (opts.signal?.aborted)
                    throw e;
                if (timedOut) {
                    failure = new APITimeoutError(`The gateway did not answer within ${timeout} ms.`);
                    safe = IDEMPOTENT.has(method);
                }
                else {
                    failure = new APIConnectionError(`Connection to the gateway failed: ${String(e)}`);
                    safe = IDEMPOTENT.has(method) || notSent(e);
                }
            }
            const delay = safe && attempt < retries
                ? retryDelayMs(attempt, failure instanceof APIError ? failure.retryAfter : null) : null;
            if (delay === null)
                throw failure;
            await sleep(delay, opts.signal);
        }
    }
    /** A JSON request and its parsed answer. */
    async json(method, path, opts, body, query) {
        const { response } = await this.send(method, path, body, query, opts);
        const text = await response.text();
        try {
            return JSON.parse(text);
        }
        catch {
            throw new APIError(`The gateway answered HTTP ${response.status} with a body that is not JSON.`, { status: response.status, requestId: response.headers.get("x-request-id"), body: text });
        }
    }
    async stream(kind, path, body, opts) {
        const { response, controller } = await this.send("POST", path, body, undefined, opts, true);
        return new kind(response, controller);
    }
}
function asBody(params) {
    return { ...params };
}
const INCLUDE_USAGE = { stream: true, stream_options: { include_usage: true } };
class Resource {
    client;
    constructor(client) {
        this.client = client;
    }
}
function listOf(data, ...keys) {
    if (Array.isArray(data))
        return data;
    if (data && typeof data === "object") {
        for (const k of keys) {
            const v = data[k];
            if (Array.isArray(v))
                return v;
        }
    }
    throw new PeriluneError(`expected a list, got ${typeof data}`);
}
class Chat extends Resource {
    /** POST /v1/chat/completions; `usage` carries the cost (USD) and timings (ms). */
    create(params, opts) {
        return this.client.json("POST", "/chat/completions", opts, asBody(params));
    }
    /** Streamed chat: `for await` the chunks; `.usage` holds the final usage and cost. */
    stream(params, opts) {
        return this.client.stream(ChatStream, "/chat/completions", { ...asBody(params), ...INCLUDE_USAGE }, opts);
    }
}
class Completions extends Resource {
    create(params, opts) {
        return this.client.json("POST", "/completions", opts, asBody(params));
    }
    stream(params, opts) {
        return this.client.stream(CompletionStream, "/completions", { ...asBody(params), ...INCLUDE_USAGE }, opts);
    }
}
class EmbeddingsAPI extends Resource {
    create(params, opts) {
        return this.client.json("POST", "/embeddings", opts, asBody(params));
    }
}
/** The Anthropic Messages dialect, reaching any model the gateway serves. */
class Messages extends Resource {
    create(params, opts) {
        return this.client.json("POST", "/messages", opts, asBody(params));
    }
    stream(params, opts) {
        return this.client.stream(MessageStream, "/messages", { ...asBody(params), stream: true }, opts);
    }
    countTokens(params, opts) {
        return this.client.json("POST", "/messages/count_tokens", opts, asBody(params));
    }
}
/** The OpenAI Responses API. */
class Responses extends Resource {
    create(params, opts) {
        return this.client.json("POST", "/responses", opts, asBody(params));
    }
    stream(params, opts) {
        return this.client.stream(ResponseStream, "/responses", { ...asBody(params), stream: true }, opts);
    }
    retrieve(id, opts) {
        return this.client.json("GET", `/responses/${encodeURIComponent(id)}`, opts);
    }
    delete(id, opts) {
        return this.client.json("DELETE", `/responses/${encodeURIComponent(id)}`, opts);
    }
    async inputItems(id, opts) {
        return listOf(await this.client.json("GET", `/responses/${encodeURIComponent(id)}/input_items`, opts), "data");
    }
}
class Models extends Resource {
    /** The catalog; `{ input: ["text", "image"] }` / `{ output: ["embedding"] }` keep models supporting all. */
    async list(params = {}, opts) {
        return listOf(await this.client.json("GET", "/models", opts, undefined, { ...params }), "data");
    }
    retrieve(model, opts) {
        return this.client.json("GET", `/models/${encodeURIComponent(model)}`, opts);
    }
}
class Providers extends Resource {
    /** Every configured provider with the models it serves. */
    async list(opts) {
        return listOf(await this.client.json("GET", "/providers", opts), "data", "providers");
    }
    /** The providers serving `model`, with status and live latency, TTFT, throughput and error rate. */
    forModel(model, opts) {
        return this.client.json("GET", "/providers", opts, undefined, { model });
    }
}
/** The semantic model router (POST /v1/router). */
class Router extends Resource {
    /** Only the decision (`execute: false`): the chosen model and every candidate's score. */
    decide(params, opts) {
        return this.client.json("POST", "/router", opts, { ...asBody(params), execute: false });
    }
    /** Route and run: a chat completion from the chosen model, with the decision in `.router`. */
    create(params, opts) {
        return this.client.json("POST", "/router", opts, { ...asBody(params), execute: true });
    }
    stream(params, opts) {
        return this.client.stream(ChatStream, "/router", { ...asBody(params), execute: true, ...INCLUDE_USAGE }, opts);
    }
    /** Every profiled model (quality per cluster, mean cost), the embedder and the provenance. */
    profiles(opts) {
        return this.client.json("GET", "/router/profiles", opts);
    }
}
class BalanceAPI extends Resource {
    /** The key's account: balance, spend today and this month, alert settings. */
    retrieve(opts) {
        return this.client.json("GET", "/balance", opts);
    }
    /** Low-balance alert thresholds (USD, decimal strings) and the webhook to call. */
    setAlerts(params, opts) {
        return this.client.json("POST", "/balance/alerts", opts, asBody(params));
    }
}
class UsageRecords extends Resource {
    /** One page of usage records, newest first; `next_cursor` fetches the next. */
    list(params = {}, opts) {
        return this.client.json("GET", "/usage/records", opts, undefined, { ...params });
    }
    /** Every matching record, newest first, following the cursor page by page. */
    async *iter(params = {}, opts) {
        const { pageSize, ...filter } = params;
        let cursor;
        for (;;) {
            const page = await this.list({ ...filter, limit: pageSize, cursor }, opts);
            yield* page.data;
            if (!page.has_more || !page.next_cursor)
                return;
            cursor = page.next_cursor;
        }
    }
    /** One record, with its stored payload when the request was sent with `observability: true`. */
    retrieve(id, opts) {
        return this.client.json("GET", `/usage/records/${encodeURIComponent(id)}`, opts);
    }
}
class UsageAPI extends Resource {
    records = new UsageRecords(this.client);
    /** Requests, errors, tokens, cost and latency/TTFT percentiles grouped by app, model, provider, key,
     * account, hour or day (at most two). */
    aggregate(params = {}, opts) {
        return this.client.json("GET", "/usage/aggregate", opts, undefined, { ...params });
    }
}
class FeedbackAPI extends Resource {
    /** Attach a quality score in [0, 1] to a logged request. */
    create(params, opts) {
        return this.client.json("POST", "/feedback", opts, asBody(params));
    }
}
