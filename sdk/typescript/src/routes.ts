/**
 * Every route the SDK calls, with the body fields it may send: the contract the tests check against
 * the gateway's own /openapi.json. The field lists are proven complete at compile time against the
 * request types (`Exact`).
 */
import type {
  AlertParams, ChatCreateParams, CompletionCreateParams, CountTokensParams, EmbeddingCreateParams, FeedbackParams,
  MessageCreateParams, ResponseCreateParams, RouterParams,
} from "./types.js";

type Exact<L extends readonly string[], K extends string> =
  [Exclude<K, L[number]>, Exclude<L[number], K>] extends [never, never] ? readonly string[] : never;

function fields<K extends string>() {
  return <const L extends readonly string[]>(list: L & Exact<L, K>): readonly string[] => list;
}

const ROUTING = ["provider", "fallbacks", "fallback_model", "hedge", "observability"] as const;
const CHAT_BODY = [...ROUTING, "n", "stop", "max_tokens", "max_completion_tokens", "temperature", "top_p",
  "frequency_penalty", "presence_penalty", "seed", "logprobs", "top_logprobs", "logit_bias", "tools", "tool_choice",
  "parallel_tool_calls", "response_format", "user", "reasoning_effort"] as const;

export interface Route {
  method: "GET" | "POST" | "DELETE";
  /** Below the base URL's /v1. */
  path: string;
  fields?: readonly string[];
  required?: readonly string[];
  /** Body fields the method sets itself (stream, execute, ...). */
  fixed?: readonly string[];
}

export const ROUTES: readonly Route[] = [
  { method: "POST", path: "/chat/completions", fields: fields<keyof ChatCreateParams>()(["model", "messages",
    ...CHAT_BODY]), required: ["model", "messages"], fixed: ["stream", "stream_options"] },
  { method: "POST", path: "/completions", fields: fields<keyof CompletionCreateParams>()(["model", "prompt",
    ...ROUTING, "n", "best_of", "stop", "max_tokens", "temperature", "top_p", "frequency_penalty", "presence_penalty",
    "logprobs", "echo", "suffix", "seed", "user"]), required: ["model", "prompt"], fixed: ["stream", "stream_options"] },
  { method: "POST", path: "/embeddings", fields: fields<keyof EmbeddingCreateParams>()(["model", "input",
    "encoding_format", "dimensions", "user", "provider", "observability", "fallbacks", "fallback_model"]),
    required: ["model", "input"] },
  { method: "POST", path: "/messages", fields: fields<keyof MessageCreateParams>()(["model", "max_tokens", "messages",
    ...ROUTING, "system", "metadata", "stop_sequences", "temperature", "top_p", "top_k", "tools", "tool_choice",
    "thinking"]), required: ["model", "max_tokens", "messages"], fixed: ["stream"] },
  { method: "POST", path: "/messages/count_tokens", fields: fields<keyof CountTokensParams>()(["model", "messages",
    "system", "tools", "tool_choice", "thinking", "provider"]), required: ["model", "messages"] },
  { method: "GET", path: "/models" },
  { method: "GET", path: "/models/{model}" },
  { method: "GET", path: "/balance" },
  { method: "POST", path: "/balance/alerts", fields: fields<keyof AlertParams>()(["thresholds_usd", "webhook_url"]),
    required: [] },
  { method: "GET", path: "/usage/records" },
  { method: "GET", path: "/usage/records/{record_id}" },
  { method: "GET", path: "/usage/aggregate" },
  { method: "GET", path: "/providers" },
  { method: "POST", path: "/router", fields: fields<keyof RouterParams>()(["messages", "models", "cost_weight",
    ...CHAT_BODY]), required: ["messages"], fixed: ["stream", "stream_options", "execute"] },
  { method: "GET", path: "/router/profiles" },
  { method: "POST", path: "/feedback", fields: fields<keyof FeedbackParams>()(["request_id", "score"]),
    required: ["request_id", "score"] },
  { method: "POST", path: "/responses", fields: fields<keyof ResponseCreateParams>()(["model", ...ROUTING,
    "input", "instructions", "tools", "tool_choice", "max_output_tokens", "max_tool_calls", "temperature", "top_p",
    "top_logprobs", "text", "reasoning", "metadata", "store", "background", "previous_response_id",
    "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key", "service_tier", "truncation", "include",
    "stream_options"]), required: ["model"], fixed: ["stream"] },
  { method: "GET", path: "/responses/{response_id}" },
  { method: "DELETE", path: "/responses/{response_id}" },
  { method: "GET", path: "/responses/{response_id}/input_items" },
];

