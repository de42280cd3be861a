/** Streams: `for await` for typed items; afterwards the final usage (with cost and timings) and the
 * assembled text are properties. Breaking out of the loop, or `abort()`, releases the connection. */
import { PeriluneError, streamError } from "./errors.js";
import { sseEvents } from "./sse.js";
export class Stream {
    response;
    controller;
    done = false;
    parts = [];
    /** The gateway's id of this request (`x-request-id`). */
    requestId;
    constructor(response, controller) {
        this.response = response;
        this.controller = controller;
        this.requestId = response.headers.get("x-request-id");
    }
    async *[Symbol.asyncIterator]() {
        const body = this.response.body;
        if (!body)
            return;
        try {
            for await (const { event, data } of sseEvents(body)) {
                const item = this.feed(event, data);
                if (item !== null)
                    yield item;
                if (this.done)
                    break;
            }
        }
        finally {
            this.controller.abort();
        }
    }
    /** Read the stream to its end (items dropped; usage and text kept). */
    async untilDone() {
        for await (const _ of this) { /* drain */ }
        return this;
    }
    /** The text assembled from the deltas so far. */
    get text() {
        return this.parts.join("");
    }
    abort() {
        this.controller.abort();
    }
}
function final(usage) {
    if (usage === null) {
        throw new PeriluneError("No usage yet: it comes at the end of the stream; read the stream to its end first.");
    }
    return usage;
}
function parse(data) {
    return JSON.parse(data);
}
export class ChatStream extends Stream {
    finalUsage = null;
    provider = null;
    model = null;
    /** Tokens, cost and timings of the whole stream (sent with the last chunk). */
    get usage() {
        return final(this.finalUsage);
    }
    /** For router streams: the model the router chose. */
    get routedModel() {
        return this.response.headers.get("x-perilune-routed-model");
    }
    feed(_event, data) {
        if (data === "[DONE]") {
            this.done = true;
            return null;
        }
        const obj = parse(data);
        if ("error" in obj && !("choices" in obj))
            throw streamError(obj);
        const chunk = obj;
        this.provider = chunk.provider ?? this.provider;
        this.model = chunk.model ?? this.model;
        if (chunk.usage)
            this.finalUsage = chunk.usage;
        for (const c of chunk.choices ?? [])
            if (c.index === 0 && c.delta?.content)
                this.parts.push(c.delta.content);
        return chunk;
    }
}
export class CompletionStream extends Stream {
    finalUsage = null;
    provider = null;
    get usage() {
        return final(this.finalUsage);
    }
    feed(_event, data) {
        if (data === "[DONE]") {
            this.done = true;
            return null;
        }
        const obj = parse(data);
        if ("error" in obj && !("choices" in obj))
            throw streamError(obj);
        const chunk = obj;
        this.provider = chunk.provider ?? this.provider;
        if (chunk.usage)
            this.finalUsage = chunk.usage;
        for (const c of chunk.choices ?? [])
            if (c.index === 0)
                this.parts.push(c.text);
        return chunk;
    }
}
export class MessageStream extends Stream {
    /** Set by message_start: id, model, provider. */
    message = null;
    finalUsage = null;
    stopReason = null;
    /** Tokens, cost and timings (sent with message_delta). */
    get usage() {
        return final(this.finalUsage);
    }
    get provider() {
        return this.message?.provider ?? null;
    }
    feed(event, data) {
        const obj = parse(data);
        const kind = obj["type"] ?? event;
        if (kind === "error")
            throw streamError(obj);
        const ev = obj;
        if (ev.type === "message_start" && ev.message)
            this.message = ev.message;
        else if (ev.type === "content_block_delta" && ev.delta?.["type"] === "text_delta") {
            this.parts.push(String(ev.delta["text"] ?? ""));
        }
        else if (ev.type === "message_delta") {
            if (ev.usage)
                this.finalUsage = ev.usage;
            const reason = ev.delta?.["stop_reason"];
            if (typeof reason === "string")
                this.stopReason = reason;
        }
        else if (ev.type === "message_stop")
            this.done = true;
        return ev;
    }
}
export class ResponseStream extends Stream {
    /** The final Response (from response.completed), with usage and cost. */
    responseObject = null;
    feed(event, data) {
        if (data === "[DONE]") {
            this.done = true;
            return null;
        }
        const obj = parse(data);
        const kind = obj["type"] ?? event;
        if (kind === "error")
            throw streamError("error" in obj ? obj : { error: obj });
        const ev = obj;
        if (ev.type === "response.output_text.delta" && typeof ev.delta === "string")
            this.parts.push(ev.delta);
        if (ev.response)
            this.responseObject = ev.response;
        if (ev.type === "response.completed" || ev.type === "response.failed" || ev.type === "response.incomplete") {
            this.done = true;
        }
        return ev;
    }
}
