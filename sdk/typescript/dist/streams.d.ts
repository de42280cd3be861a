import type { ChatCompletionChunk, CompletionChunk, Message, MessageStreamEvent, MessageUsage, ResponseObject, ResponseStreamEvent, Usage } from "./types.js";
export declare abstract class Stream<T> implements AsyncIterable<T> {
    readonly response: Response;
    private readonly controller;
    protected done: boolean;
    protected readonly parts: string[];
    /** The gateway's id of this request (`x-request-id`). */
    readonly requestId: string | null;
    constructor(response: Response, controller: AbortController);
    /** One event's data; returns the item to yield, or null for control events. */
    protected abstract feed(event: string | null, data: string): T | null;
    [Symbol.asyncIterator](): AsyncGenerator<T>;
    /** Read the stream to its end (items dropped; usage and text kept). */
    untilDone(): Promise<this>;
    /** The text assembled from the deltas so far. */
    get text(): string;
    abort(): void;
}
export declare class ChatStream extends Stream<ChatCompletionChunk> {
    private finalUsage;
    provider: string | null;
    model: string | null;
    /** Tokens, cost and timings of the whole stream (sent with the last chunk). */
    get usage(): Usage;
    /** For router streams: the model the router chose. */
    get routedModel(): string | null;
    protected feed(_event: string | null, data: string): ChatCompletionChunk | null;
}
export declare class CompletionStream extends Stream<CompletionChunk> {
    private finalUsage;
    provider: string | null;
    get usage(): Usage;
    protected feed(_event: string | null, data: string): CompletionChunk | null;
}
export declare class MessageStream extends Stream<MessageStreamEvent> {
    /** Set by message_start: id, model, provider. */
    message: Message | null;
    private finalUsage;
    stopReason: string | null;
    /** Tokens, cost and timings (sent with message_delta). */
    get usage(): MessageUsage;
    get provider(): string | null;
    protected feed(event: string | null, data: string): MessageStreamEvent | null;
}
export declare class ResponseStream extends Stream<ResponseStreamEvent> {
    /** The final Response (from response.completed), with usage and cost. */
    responseObject: ResponseObject | null;
    protected feed(event: string | null, data: string): ResponseStreamEvent | null;
}
