/**
 * Request and response types of the gateway. Field names are the wire's. Costs are USD as JSON
 * numbers (the gateway prints the shortest decimal that round-trips: exact to the pico-dollar);
 * balances are decimal strings, as the gateway sends them. `null` means the gateway did not say.
 */

import type { JSONObject } from "./params.js";

export type * from "./params.js";

// ---- cost and timings ---------------------------------------------------------------------------

export interface CostAndTimings {
  input_cost_usd?: number;
  output_cost_usd?: number;
  cache_input_cost_usd?: number;
  unit_cost_usd?: number;
  total_cost_usd?: number;
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

// ---- chat ---------------------------------------------------------------------------------------

export interface ToolCall {
  id?: string;
  type?: string;
  index?: number;
  function?: { name?: string; arguments?: string };
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
  expected_cost_usd: number;
  score: number;
  [key: string]: unknown;
}

export interface RouterDecision {
  model: string;
  cost_weight: number;
  candidates: RouterCandidate[];
  routing_ms: number;
  embedder?: unknown;
  cluster?: unknown;
  [key: string]: unknown;
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
    delta: { role?: string; content?: string | null; tool_calls?: ToolCall[]; reasoning_content?: string;
      refusal?: string | null };
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
  choices: { index: number; text: string; finish_reason: string | null; logprobs?: unknown }[];
  usage: Usage;
  system_fingerprint?: string | null;
}

export interface CompletionChunk extends Omit<Completion, "usage"> {
  usage?: Usage | null;
}

export interface Embeddings {
  object: "list";
  data: { object: "embedding"; index: number; embedding: number[] | string }[];
  model: string;
  provider: string;
  usage: Usage;
}

// ---- Anthropic dialect --------------------------------------------------------------------------

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

// ---- Responses API ------------------------------------------------------------------------------

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

// ---- catalog, providers, router -----------------------------------------------------------------

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
  parameters: { context: number | null; max_output_tokens: number | null };
  /** USD per million tokens. */
  pricePerMillionTokens: { input: number; output: number; discountPercentage?: number; cacheRead?: number;
    cacheWrite?: number; [key: string]: unknown };
  supportedParameters: string[];
  inputModalities: string[];
  outputModalities: string[];
  freeConfig?: { maxTokens: number; isPremium: boolean };
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
  upstream_model: string;
  /** ok, degraded or down. */
  status: "ok" | "degraded" | "down";
  price: unknown;
  context: number | null;
  latency_ms_p50: number | null;
  ttft_ms_p50: number | null;
  throughput_tps: number | null;
  error_rate: number | null;
  requests: number | null;
  [key: string]: unknown;
}

export interface ModelProviders {
  model: string;
  providers: ProviderHealth[];
}

export interface ProviderInfo {
  provider: string;
  models: unknown[];
  [key: string]: unknown;
}

export interface RouterProfile {
  model?: string;
  id?: string;
  [key: string]: unknown;
}

export interface Feedback {
  request_id?: string;
  score?: number;
  [key: string]: unknown;
}

// ---- money and usage ----------------------------------------------------------------------------

export interface Balance {
  object: "balance";
  account_id: string;
  /** Decimal string, exact. */
  balance_usd: string;
  currency: string;
  prepaid: boolean;
  spend_today_usd: string;
  spend_month_usd: string;
  alerts: { thresholds_usd: string[]; webhook_url: string | null };
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
    prompt_tokens: number | null; input_tokens: number | null; completion_tokens: number | null;
    cache_read_tokens: number | null; cache_write_tokens: number | null; reasoning_tokens: number | null;
    total_tokens: number | null; estimated: boolean;
  };
  cost: { input_usd: number | null; output_usd: number | null; cache_usd: number | null; unit_usd: number | null;
    total_usd: number | null };
  latency_ms: number | null;
  ttft_ms: number | null;
  generation_ms: number | null;
  tokens_per_s: number | null;
  route: { provider: string; model: string; status: number; error: string | null }[];
  observability: boolean;
  payload?: { request: unknown; response: unknown } | null;
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
  tokens: { prompt: number; input: number; output: number; cache_read: number; cache_write: number;
    reasoning: number; total: number };
  estimated_requests: number;
  cost_usd: { input: number; output: number; cache: number; unit: number; total: number };
  latency_ms: Percentiles;
  ttft_ms: Percentiles;
  tokens_per_s: number | null;
}

export interface UsageAggregate {
  object: "usage.aggregate";
  group_by: string[];
  from: string | null;
  to: string | null;
  percentiles: { method: string; values_ranked: number };
  data: AggregateRow[];
}
