/** The keys each response type declares, proven equal to the type's keys at compile time, so a test can
 * check that a real answer of the gateway has no key the SDK's types leave out (never drift). */
import assert from "node:assert/strict";

import type {
  AggregateRow, Balance, ChatCompletion, ChatCompletionChunk, Completion, Embeddings, Message, MessageUsage, ModelInfo,
  ModelProviders, ProviderHealth, ProviderInfo, RouterCandidate, RouterDecision, RouterProfile, RouterProfiles,
  UsageAggregate, UsagePage, UsageRecord, Usage,
} from "../src/index.js";

type Exact<L extends readonly string[], K extends string> =
  [Exclude<K, L[number]>, Exclude<L[number], K>] extends [never, never] ? readonly string[] : never;

function keys<T>() {
  return <const L extends readonly string[]>(list: L & Exact<L, keyof T & string>): readonly string[] => list;
}

export const SHAPES = {
  ChatCompletion: keys<ChatCompletion>()(["id", "object", "created", "model", "provider", "choices", "usage",
    "system_fingerprint", "service_tier", "router"]),
  ChatCompletionChunk: keys<ChatCompletionChunk>()(["id", "object", "created", "model", "provider", "choices", "usage",
    "system_fingerprint", "service_tier", "obfuscation"]),
  Usage: keys<Usage>()(["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
    "completion_tokens_details", "input_cost_usd", "output_cost_usd", "cache_input_cost_usd", "unit_cost_usd",
    "total_cost_usd", "charged_usd", "latency_ms", "ttft_ms", "estimated", "free_tokens"]),
  Completion: keys<Completion>()(["id", "object", "created", "model", "provider", "choices", "usage",
    "system_fingerprint"]),
  Embeddings: keys<Embeddings>()(["object", "data", "model", "provider", "usage"]),
  Message: keys<Message>()(["id", "type", "role", "model", "provider", "content", "stop_reason", "stop_sequence",
    "usage"]),
  MessageUsage: keys<MessageUsage>()(["input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_read_input_tokens", "cache_creation", "service_tier", "input_cost_usd", "output_cost_usd",
    "cache_input_cost_usd", "unit_cost_usd", "total_cost_usd", "charged_usd", "latency_ms", "ttft_ms", "estimated",
    "free_tokens"]),
  ModelInfo: keys<ModelInfo>()(["id", "object", "created", "owned_by", "modelId", "permaslug", "name", "provider",
    "description", "parameters", "pricePerMillionTokens", "supportedParameters", "inputModalities", "outputModalities",
    "freeConfig", "isEnabled", "supportReasoning", "maxCompletionTokens", "avgThroughput", "releaseDate", "createdAt",
    "updatedAt"]),
  Balance: keys<Balance>()(["object", "account_id", "balance_usd", "currency", "prepaid", "spend_today_usd",
    "spend_month_usd", "alerts"]),
  UsagePage: keys<UsagePage>()(["object", "data", "has_more", "next_cursor"]),
  UsageRecord: keys<UsageRecord>()(["id", "object", "created_at", "account_id", "key_id", "app", "dialect", "endpoint",
    "model_requested", "model_served", "provider", "status", "error_type", "stream", "usage", "cost", "latency_ms",
    "ttft_ms", "generation_ms", "tokens_per_s", "route", "observability", "payload", "payload_expired"]),
  UsageAggregate: keys<UsageAggregate>()(["object", "group_by", "from", "to", "percentiles", "data"]),
  AggregateRow: keys<AggregateRow>()(["group", "requests", "errors", "error_rate", "tokens", "estimated_requests",
    "cost_usd", "latency_ms", "ttft_ms", "tokens_per_s"]),
  ProviderInfo: keys<ProviderInfo>()(["provider", "type", "ready", "models"]),
  ModelProviders: keys<ModelProviders>()(["model", "served_model", "providers"]),
  ProviderHealth: keys<ProviderHealth>()(["provider", "type", "upstream_model", "status", "ready", "price", "context",
    "max_output_tokens", "latency_ms_p50", "ttft_ms_p50", "ttft_ms_p95", "throughput_tps", "error_rate", "requests",
    "breaker"]),
  RouterDecision: keys<RouterDecision>()(["object", "model", "served_model", "cost_weight", "candidates", "cluster",
    "embedder", "profiles", "routing_ms", "cached"]),
  RouterCandidate: keys<RouterCandidate>()(["model", "predicted_quality", "expected_cost_usd", "expected_cost_pusd",
    "score", "servable"]),
  RouterProfiles: keys<RouterProfiles>()(["object", "data", "embedder", "assignment", "clusters", "profiles",
    "provenance"]),
  RouterProfile: keys<RouterProfile>()(["id", "validation_size", "clusters", "quality", "cluster_sizes", "accuracy",
    "mean_cost_usd", "mean_cost_pusd", "mean_prompt_tokens", "mean_output_tokens", "served_model", "servable",
    "source"]),
} as const;

/** Every key of `obj` is one the SDK's type `name` declares. */
export function assertDeclared(name: keyof typeof SHAPES, obj: unknown): void {
  assert.ok(obj && typeof obj === "object", `${name}: not an object`);
  const unknown = Object.keys(obj).filter((k) => !SHAPES[name].includes(k));
  assert.deepEqual(unknown, [], `${name} does not declare these keys the gateway sent`);
}
