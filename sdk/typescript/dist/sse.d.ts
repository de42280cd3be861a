/** Server-sent events over a fetch body (web streams): (event, data) pairs. */
export interface SSEEvent {
    event: string | null;
    data: string;
}
export declare function sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEEvent>;
