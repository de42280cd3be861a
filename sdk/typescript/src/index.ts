export { Perilune, DEFAULT_BASE_URL } from "./client.js";
export type { ClientOptions, RequestOptions } from "./client.js";
export * from "./errors.js";
export { ChatStream, CompletionStream, MessageStream, ResponseStream, Stream } from "./streams.js";
export type * from "./types.js";
export { VERSION } from "./version.js";
