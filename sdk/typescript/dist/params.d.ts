/** Request bodies, one interface per route (their field lists are checked against /openapi.json). */
export type JSONObject = Record<string, unknown>;
export interface ProviderPreferences {
    order?: string[];
    only?: string[];
    ignore?: string[];
    sort?: "price" | "latency" | "throughput";
    allow_fallbacks?: boolean;
}
export interface RoutingParams {
    /** A name forces one provider; an object steers the choice. */
    provider?: string | ProviderPreferences;
    /** Models to try, in order, when the requested one fails. */
    fallbacks?: string[];
    fallback_model?: string;
    hedge?: boolean;
    /** Store the request and response with the usage record. */
    observability?: boolean;
}
export interface ChatBodyParams extends RoutingParams {
    n?: number;
    stop?: string | string[];
    max_tokens?: number;
    max_completion_tokens?: number;
    temperature?: number;
    top_p?: number;
    frequency_penalty?: number;
    presence_penalty?: number;
    seed?: number;
    logprobs?: boolean;
    top_logprobs?: number;
    logit_bias?: Record<string, number>;
    tools?: JSONObject[];
    tool_choice?: string | JSONObject;
    parallel_tool_calls?: boolean;
    response_format?: JSONObject;
    user?: string;
    reasoning_effort?: string;
}
export interface ChatMessageParam {
    role: "system" | "developer" | "user" | "assistant" | "tool" | "function";
    content?: string | JSONObject[] | null;
    [key: string]: unknown;
}
export interface ChatCreateParams extends ChatBodyParams {
    model: string;
    messages: ChatMessageParam[];
}
export interface CompletionCreateParams extends RoutingParams {
    model: string;
    prompt: string | string[] | number[] | number[][];
    n?: number;
    best_of?: number;
    stop?: string | string[];
    max_tokens?: number;
    temperature?: number;
    top_p?: number;
    frequency_penalty?: number;
    presence_penalty?: number;
    logprobs?: number;
    echo?: boolean;
    suffix?: string;
    seed?: number;
    user?: string;
}
export interface EmbeddingCreateParams {
    model: string;
    input: string | string[] | number[] | number[][];
    encoding_format?: "float" | "base64";
    dimensions?: number;
    user?: string;
    provider?: string | ProviderPreferences;
    observability?: boolean;
    fallbacks?: string[];
    fallback_model?: string;
}
export interface MessageCreateParams extends RoutingParams {
    model: string;
    max_tokens: number;
    messages: JSONObject[];
    system?: string | JSONObject[];
    metadata?: JSONObject;
    stop_sequences?: string[];
    temperature?: number;
    top_p?: number;
    top_k?: number;
    tools?: JSONObject[];
    tool_choice?: JSONObject;
    thinking?: JSONObject;
}
export interface CountTokensParams {
    model: string;
    messages: JSONObject[];
    system?: string | JSONObject[];
    tools?: JSONObject[];
    tool_choice?: JSONObject;
    thinking?: JSONObject;
    provider?: string | ProviderPreferences;
}
export interface ResponseCreateParams extends RoutingParams {
    model: string;
    /** May be omitted with previous_response_id. */
    input?: string | JSONObject[];
    instructions?: string;
    tools?: JSONObject[];
    tool_choice?: string | JSONObject;
    max_output_tokens?: number;
    max_tool_calls?: number;
    temperature?: number;
    top_p?: number;
    top_logprobs?: number;
    text?: JSONObject;
    reasoning?: JSONObject;
    metadata?: Record<string, string>;
    store?: boolean;
    background?: boolean;
    previous_response_id?: string;
    parallel_tool_calls?: boolean;
    user?: string;
    safety_identifier?: string;
    prompt_cache_key?: string;
    service_tier?: string;
    truncation?: "auto" | "disabled";
    include?: string[];
    /** With stream() only. */
    stream_options?: {
        include_obfuscation?: boolean;
    };
}
export interface RouterParams extends ChatBodyParams {
    messages: ChatMessageParam[];
    /** The candidates (at least 2); default: every profiled model served here. */
    models?: string[];
    /** 0 ignores cost; higher prefers cheaper models. */
    cost_weight?: number;
}
export interface FeedbackParams {
    request_id: string;
    /** Quality in [0, 1]. */
    score: number;
}
export interface AlertParams {
    /** Decimal strings, e.g. ["5", "1.50"]. */
    thresholds_usd?: (string | number)[];
    webhook_url?: string | null;
}
export interface ModelListParams {
    /** Keep models that accept all of these input modalities (text, image, audio, file, video). */
    input?: string[];
    /** Keep models that produce all of these (text, image, audio, embedding). */
    output?: string[];
}
export interface UsageFilter {
    from?: string | number;
    to?: string | number;
    app?: string;
    model?: string;
    provider?: string;
    status?: string | number;
    key_id?: string;
    account_id?: string;
}
export interface UsageListParams extends UsageFilter {
    limit?: number;
    cursor?: string;
}
export interface UsageAggregateParams extends UsageFilter {
    group_by?: string | string[];
    percentiles?: boolean;
}
