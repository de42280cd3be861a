/**
 * Request and response types of the gateway. Field names are the wire's. Money is USD as the gateway
 * sends it: a plain decimal string, exact to the pico-dollar ("0.000038"; parse it with a decimal
 * library, or `Number()` when a float is close enough). Catalog prices per million tokens are numbers.
 * `null` means the gateway did not say.
 */
/** A USD amount: a decimal string, exact ("0.000038", "12.5", "0"). */
export type USD = string;
import type { JSONObject } from "./params.js";
export type * from "./params.js";
export interface CostAndTimings {
    input_cost_usd?: USD;
    output_cost_usd?: USD;
    cache_input_cost_usd?: USD;
    unit_cost_usd?: USD;
    total_cost_usd?: USD;
    /** What the balance was charged ("0" when the free tier covered it). */
    charged_usd?: USD;
    latency_ms?: number;
    ttft_ms?: number | null;
    estimated?: boolean;
    free_tokens?: number;
}
export interface Usage extends CostAndTimings {
    prompt_tokens: number;
    completion_tokens?: number;
    total_tokens: number;
    prompt_tokens_details?: Record<string, number>;
    completion_tokens_details?: Record<string, number>;
}
export interface ToolCall {
    id?: string;
    type?: string;
    index?: number;
    function?: {
        name?: string;
        arguments?: string;
    };
}
export interface ChatMessage {
    role: string;
    content: string | null;
    refusal?: string | null;
    tool_calls?: ToolCall[];
    reasoning_content?: string;
    annotations?: unknown[];
}
export interface ChatChoice {
    index: number;
    message: ChatMessage;
    finish_reason: string | null;
    logprobs?: unknown;
}
export interface RouterCandidate {
    model: string;
    /** Estimated probability of a correct answer, in [0, 1]. */
    predicted_quality: number;
    expected_cost_usd: USD;
    /** The same, in pico-USD. */
    expected_cost_pusd: number;
    /** (1 - predicted_quality) + cost_weight * cost / the candidates' max cost: the lowest wins. */
    score: number;
    /** A provider here serves it (execute needs that). */
    servable: boolean;
}
export interface RouterDecision {
    object: "router.decision";
    model: string;
    /** The catalog model that serves it here (null: not servable). */
    served_model: string | null;
    cost_weight: number;
    candidates: RouterCandidate[];
    /** The prompt's cluster: index, its weight, the number of clusters, hard or soft assignment. */
    cluster: {
        index: number;
        weight: number;
        k: number;
        assignment: string;
    };
    embedder: string;
    /** Where the profiles came from. */
    profiles: string;
    routing_ms: number;
    /** The prompt's embedding came from the cache. */
    cached: boolean;
}
export interface ChatCompletion {
    id: string;
    object: "chat.completion";
    created: number;
    model: string;
    provider: string;
    choices: ChatChoice[];
    usage: Usage;
    system_fingerprint?: string | null;
    service_tier?: string | null;
    /** Set by `router.create`: what the router chose. */
    router?: RouterDecision;
}
export interface ChatCompletionChunk {
    id: string;
    object: "chat.completion.chunk";
    created: number;
    model: string;
    provider: string;
    choices: {
        index: number;
        delta: {
            role?: string;
            content?: string | null;
            tool_calls?: ToolCall[];
            reasoning_content?: string;
            refusal?: string | null;
        };
        finish_reason: string | null;
        logprobs?: unknown;
    }[];
    /** Only on the last chunk: the whole stream's tokens, cost and timings. */
    usage?: Usage | null;
    system_fingerprint?: string | null;
    service_tier?: string | null;
    obfuscation?: string;
}
export interface Completion {
    id: string;
    object: "text_completion";
    created: number;
    model: string;
    provider: string;
    choices: {
        index: number;
        text: string;
        finish_reason: string | null;
        logprobs?: unknown;
    }[];
    usage: Usage;
    system_fingerprint?: string | null;
}
export interface CompletionChunk extends Omit<Completion, "usage"> {
    usage?: Usage | null;
}
export interface Embeddings {
    object: "list";
    data: {
        object: "embedding";
        index: number;
        embedding: number[] | string;
    }[];
    model: string;
    provider: string;
    usage: Usage;
}
export interface MessageUsage extends CostAndTimings {
    input_tokens: number;
    output_tokens: number;
    cache_creation_input_tokens?: number | null;
    cache_read_input_tokens?: number | null;
    cache_creation?: Record<string, number>;
    service_tier?: string | null;
}
export interface ContentBlock {
    type: string;
    text?: string;
    id?: string;
    name?: string;
    input?: unknown;
    thinking?: string;
    signature?: string;
    [key: string]: unknown;
}
export interface Message {
    id: string;
    type: "message";
    role: "assistant";
    model: string;
    provider: string;
    content: ContentBlock[];
    stop_reason: string | null;
    stop_sequence: string | null;
    usage: MessageUsage;
}
export interface MessageStreamEvent {
    type: string;
    index?: number;
    message?: Message;
    content_block?: ContentBlock;
    delta?: JSONObject;
    usage?: MessageUsage;
    [key: string]: unknown;
}
export interface MessageTokenCount {
    input_tokens: number;
    estimated?: boolean;
}
export interface ResponseUsage extends CostAndTimings {
    input_tokens: number;
    output_tokens: number;
    total_tokens: number;
    input_tokens_details?: Record<string, number>;
    output_tokens_details?: Record<string, number>;
}
export interface ResponseObject {
    id: string;
    object: "response";
    created_at: number;
    status: string;
    model: string;
    provider?: string;
    output: JSONObject[];
    usage?: ResponseUsage | null;
    error?: unknown;
    [key: string]: unknown;
}
export interface ResponseStreamEvent {
    type: string;
    sequence_number?: number;
    delta?: unknown;
    response?: ResponseObject;
    [key: string]: unknown;
}
export interface ModelInfo {
    id: string;
    object: "model";
    created: number | null;
    owned_by: string;
    modelId: string;
    permaslug: string;
    name: string;
    provider: string;
    description?: string;
    parameters: {
        context: number | null;
        max_output_tokens: number | null;
    };
    /** USD per million tokens. */
    pricePerMillionTokens: {
        input: number;
        output: number;
        discountPercentage?: number;
        cacheRead?: number;
        cacheWrite?: number;
        [key: string]: unknown;
    };
    supportedParameters: string[];
    inputModalities: string[];
    outputModalities: string[];
    freeConfig?: {
        maxTokens: number;
        isPremium: boolean;
    };
    isEnabled?: boolean;
    supportReasoning?: boolean;
    maxCompletionTokens?: number | null;
    avgThroughput?: number | null;
    releaseDate?: string | null;
    createdAt?: string;
    updatedAt?: string;
}
export interface ProviderHealth {
    provider: string;
    /** The provider's dialect: openai, anthropic, gemini, ... */
    type: string;
    upstream_model: string;
    status: "ok" | "degraded" | "down";
    ready: boolean;
    /** The catalog price; `unit` says of what ("USD per million tokens"). */
    price: {
        input: number | null;
        output: number | null;
        cacheRead?: number;
        cacheWrite?: number;
        perImage?: number;
        perAudioMinute?: number;
        unit: string;
    };
    context: number | null;
    max_output_tokens: number | null;
    latency_ms_p50: number | null;
    ttft_ms_p50: number | null;
    ttft_ms_p95: number | null;
    throughput_tps: number | null;
    error_rate: number | null;
    requests: number | null;
    /** closed, open or half_open. */
    breaker: string;
}
export interface ModelProviders {
    model: string;
    /** The catalog model an alias points to (the model itself otherwise). */
    served_model: string;
    providers: ProviderHealth[];
}
export interface ProviderInfo {
    provider: string;
    type: string;
    ready: boolean;
    models: string[];
}
export interface RouterProfile {
    id: string;
    validation_size: number;
    clusters: number;
    /** Per cluster, in [0, 1]. */
    quality: number[];
    cluster_sizes: number[];
    accuracy: number;
    mean_cost_usd: USD;
    mean_cost_pusd: number;
    mean_prompt_tokens: number;
    mean_output_tokens: number;
    served_model: string;
    servable: boolean;
    /** The data sets it was measured on. */
    source: string;
}
export interface RouterProfiles {
    object: "list";
    data: RouterProfile[];
    embedder: string;
    assignment: string;
    clusters: number;
    profiles: string;
    /** Data sets, build date, sizes, how K was chosen. */
    provenance: Record<string, unknown>;
}
export interface Feedback {
    object: "feedback";
    request_id: string;
    score: number;
}
export interface Balance {
    object: "balance";
    account_id: string;
    balance_usd: USD;
    currency: string;
    prepaid: boolean;
    spend_today_usd: USD;
    spend_month_usd: USD;
    alerts: {
        thresholds_usd: USD[];
        webhook_url: string | null;
    };
}
export interface UsageRecord {
    id: string;
    object: "usage.record";
    created_at: number;
    account_id: string | null;
    key_id: string | null;
    app: string;
    dialect: string;
    endpoint: string;
    model_requested: string;
    model_served: string | null;
    provider: string | null;
    status: number;
    error_type: string | null;
    stream: boolean;
    usage: {
        prompt_tokens: number | null;
        input_tokens: number | null;
        completion_tokens: number | null;
        cache_read_tokens: number | null;
        cache_write_tokens: number | null;
        reasoning_tokens: number | null;
        total_tokens: number | null;
        estimated: boolean;
    };
    cost: {
        input_usd: USD | null;
        output_usd: USD | null;
        cache_usd: USD | null;
        unit_usd: USD | null;
        total_usd: USD | null;
        charged_usd: USD | null;
    };
    latency_ms: number | null;
    ttft_ms: number | null;
    generation_ms: number | null;
    tokens_per_s: number | null;
    route: {
        provider: string;
        model: string;
        status: number;
        error: string | null;
    }[];
    observability: boolean;
    payload?: {
        request: unknown;
        response: unknown;
    } | null;
    payload_expired?: boolean;
}
export interface UsagePage {
    object: "list";
    data: UsageRecord[];
    has_more: boolean;
    next_cursor: string | null;
}
export interface Percentiles {
    avg: number | null;
    p50: number | null;
    p95: number | null;
    p99: number | null;
}
export interface AggregateRow {
    group: Record<string, string | number | null>;
    requests: number;
    errors: number;
    error_rate: number;
    tokens: {
        prompt: number;
        input: number;
        output: number;
        cache_read: number;
        cache_write: number;
        reasoning: number;
        total: number;
    };
    estimated_requests: number;
    cost_usd: {
        input: USD;
        output: USD;
        cache: USD;
        unit: USD;
        total: USD;
    };
    latency_ms: Percentiles;
    ttft_ms: Percentiles;
    tokens_per_s: number | null;
}
export interface UsageAggregate {
    object: "usage.aggregate";
    group_by: string[];
    from: string | null;
    to: string | null;
    percentiles: {
        method: string;
        values_ranked: number;
    };
    data: AggregateRow[];
}
