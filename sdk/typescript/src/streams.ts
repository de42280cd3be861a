/** Streams: `for await` for typed items; afterwards the final usage (with cost and timings) and the
 * assembled text are properties. Breaking out of the loop, or `abort()`, releases the connection. */
import { PeriluneError, streamError } from "./errors.js";
import { sseEvents } from "./sse.js";
import type {
  ChatCompletionChunk, CompletionChunk, Message, MessageStreamEvent, MessageUsage, ResponseObject,
  ResponseStreamEvent, Usage,
} from "./types.js";

export abstract class Stream<T> implements AsyncIterable<T> {
  protected done = false;
  protected readonly parts: string[] = [];
  /** The gateway's id of this request (`x-request-id`). */
  readonly requestId: string | null;

  constructor(readonly response: Response, private readonly controller: AbortController) {
    this.requestId = response.headers.get("x-request-id");
  }

  /** One event's data; returns the item to yield, or null for control events. */
  protected abstract feed(event: string | null, data: string): T | null;

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    const body = this.response.body;
    if (!body) return;
    try {
      for await (const { event, data } of sseEvents(body)) {
        const item = this.feed(event, data);
        if (item !== null) yield item;
        if (this.done) break;
      }
    } finally {
      this.controller.abort();
    }
  }

  /** Read the stream to its end (items dropped; usage and text kept). */
  async untilDone(): Promise<this> {
    for await (const _ of this) { /* drain */ }
    return this;
  }

  /** The text assembled from the deltas so far. */
  get text(): string {
    return this.parts.join("");
  }

  abort(): void {
    this.controller.abort();
  }
}

function final<U>(usage: U | null): U {
  if (usage === null) {
    throw new PeriluneError("No usage yet: it comes at the end of the stream; read the stream to its end first.");
  }
  return usage;
}

function parse(data: string): Record<string, unknown> {
  return JSON.parse(data) as Record<string, unknown>;
}

export class ChatStream extends Stream<ChatCompletionChunk> {
  private finalUsage: Usage | null = null;
  provider: string | null = null;
  model: string | null = null;

  /** Tokens, cost and timings of the whole stream (sent with the last chunk). */
  get usage(): Usage {
    return final(this.finalUsage);
  }

  /** For router streams: the model the router chose. */
  get routedModel(): string | null {
    return this.response.headers.get("x-perilune-routed-model");
  }

  protected feed(_event: string | null, data: string): ChatCompletionChunk | null {
    if (data === "[DONE]") {
      this.done = true;
      return null;
    }
    const obj = parse(data);
    if ("error" in obj && !("choices" in obj)) throw streamError(obj);
    const chunk = obj as unknown as ChatCompletionChunk;
    this.provider = chunk.provider ?? this.provider;
    this.model = chunk.model ?? this.model;
    if (chunk.usage) this.finalUsage = chunk.usage;
    for (const c of chunk.choices ?? []) if (c.index === 0 && c.delta?.content) this.parts.push(c.delta.content);
    return chunk;
  }
}

export class CompletionStream extends Stream<CompletionChunk> {
  private finalUsage: Usage | null = null;
  provider: string | null = null;

  get usage(): Usage {
    return final(this.finalUsage);
  }

  protected feed(_event: string | null, data: string): CompletionChunk | null {
    if (data === "[DONE]") {
      this.done = true;
      return null;
    }
    const obj = parse(data);
    if ("error" in obj && !("choices" in obj)) throw streamError(obj);
    const chunk = obj as unknown as CompletionChunk;
    this.provider = chunk.provider ?? this.provider;
    if (chunk.usage) this.finalUsage = chunk.usage;
    for (const c of chunk.choices ?? []) if (c.index === 0) this.parts.push(c.text);
    return chunk;
  }
}

export class MessageStream extends Stream<MessageStreamEvent> {
  /** Set by message_start: id, model, provider. */
  message: Message | null = null;
  private finalUsage: MessageUsage | null = null;
  stopReason: string | null = null;

  /** Tokens, cost and timings (sent with message_delta). */
  get usage(): MessageUsage {
    return final(this.finalUsage);
  }

  get provider(): string | null {
    return this.message?.provider ?? null;
  }

  protected feed(event: string | null, data: string): MessageStreamEvent | null {
    const obj = parse(data);
    const kind = (obj["type"] as string | undefined) ?? event;
    if (kind === "error") throw streamError(obj);
    const ev = obj as MessageStreamEvent;
    if (ev.type === "message_start" && ev.message) this.message = ev.message;
    else if (ev.type === "content_block_delta" && ev.delta?.["type"] === "text_delta") {
      this.parts.push(String(ev.delta["text"] ?? ""));
    } else if (ev.type === "message_delta") {
      if (ev.usage) this.finalUsage = ev.usage;
      const reason = ev.delta?.["stop_reason"];
      if (typeof reason === "string") this.stopReason = reason;
    } else if (ev.type === "message_stop") this.done = true;
    return ev;
  }
}

export class ResponseStream extends Stream<ResponseStreamEvent> {
  /** The final Response (from response.completed), with usage and cost. */
  responseObject: ResponseObject | null = null;

  protected feed(event: string | null, data: string): ResponseStreamEvent | null {
    if (data === "[DONE]") {
      this.done = true;
      return null;
    }
    const obj = parse(data);
    const kind = (obj["type"] as string | undefined) ?? event;
    if (kind === "error") throw streamError("error" in obj ? obj : { error: obj });
    const ev = obj as ResponseStreamEvent;
    if (ev.type === "response.output_text.delta" && typeof ev.delta === "string") this.parts.push(ev.delta);
    if (ev.response) this.responseObject = ev.response;
    if (ev.type === "response.completed" || ev.type === "response.failed" || ev.type === "response.incomplete") {
      this.done = true;
    }
    return ev;
  }
}
