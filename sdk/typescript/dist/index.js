export { Perilune, DEFAULT_BASE_URL } from "./client.js";
export * from "./errors.js";
export { ChatStream, CompletionStream, MessageStream, ResponseStream, Stream } from "./streams.js";
export { VERSION } from "./version.js";
