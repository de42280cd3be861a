// The Node clients of the matrix, each against perilune in front of the simulator's three personalities:
// openai (chat, stream, tools, responses.create / responses.stream with a function tool round trip),
// @anthropic-ai/sdk (messages, stream, tools, models.list with limit), and the Vercel AI SDK with its
// default `openai(model)` (the Responses API): generateText / streamText, a tool with execute.
// Prints one JSON line per case ({client, case, model, ok, error}); exits 1 if any failed.
// Env: PERILUNE_URL (gateway base URL, no /v1), PERILUNE_KEY.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const BASE = process.env.PERILUNE_URL;
const KEY = process.env.PERILUNE_KEY;
const MODELS = (process.env.PERILUNE_MODELS || "sim-gpt,sim-claude,sim-gemini").split(",");
const WEATHER = "What is the weather in Paris?";
const params = { type: "object", properties: { city: { type: "string" } }, required: ["city"] };
let failed = 0;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function run(client, name, model, fn) {
  try {
    await fn();
    console.log(JSON.stringify({ client, case: name, model, ok: true }));
  } catch (e) {
    failed += 1;
    console.log(JSON.stringify({ client, case: name, model, ok: false, error: String(e?.message || e).slice(0, 300) }));
  }
}

const oa = new OpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY, maxRetries: 0 });
const an = new Anthropic({ baseURL: BASE, apiKey: KEY, maxRetries: 0 });
const vercel = createOpenAI({ baseURL: `${BASE}/v1`, apiKey: KEY });

for (const model of MODELS) {
  await run("openai-node", "chat", model, async () => {
    const r = await oa.chat.completions.create({ model, messages: [{ role: "user", content: "Tell me about the sea" }] });
    check(r.choices[0].message.content, "content");
  });
  await run("openai-node", "chat-stream", model, async () => {
    const s = await oa.chat.completions.create({ model, stream: true, messages: [{ role: "user", content: "Hi" }] });
    let text = "";
    for await (const c of s) text += c.choices[0]?.delta?.content || "";
    check(text, "streamed text");
  });
  await run("openai-node", "chat-tools", model, async () => {
    const r = await oa.chat.completions.create({ model, messages: [{ role: "user", content: WEATHER }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: params } }] });
    check(r.choices[0].message.tool_calls?.[0]?.function?.name === "get_weather", "tool call");
  });
  await run("openai-node", "responses.create", model, async () => {
    const r = await oa.responses.create({ model, input: "Tell me about the sea" });
    check(r.status === "completed" && r.output_text, "output_text");
  });
  await run("openai-node", "responses.stream+tool-round-trip", model, async () => {
    const tools = [{ type: "function", name: "get_weather", parameters: params, strict: false }];
    const stream = oa.responses.stream({ model, input: WEATHER, tools });
    const kinds = [];
    for await (const ev of stream) kinds.push(ev.type);
    const first = await stream.finalResponse();
    const call = first.output.find((i) => i.type === "function_call");
    check(call && call.name === "get_weather", "function_call");
    check(kinds.includes("response.function_call_arguments.delta"), "arguments deltas");
    const second = await oa.responses.create({ model, tools, input: [
      { role: "user", content: WEATHER }, call,
      { type: "function_call_output", call_id: call.call_id, output: "sunny" }] });
    check(second.output_text, "answer after the tool");
  });
  await run("anthropic-node", "messages", model, async () => {
    const r = await an.messages.create({ model, max_tokens: 200, messages: [{ role: "user", content: "Hi" }] });
    check(r.content[0]?.type === "text" && r.usage.input_tokens > 0, "text");
  });
  await run("anthropic-node", "messages-stream", model, async () => {
    const s = an.messages.stream({ model, max_tokens: 200, messages: [{ role: "user", content: "Hi" }] });
    const m = await s.finalMessage();
    check(m.content[0]?.text, "streamed text");
  });
  await run("anthropic-node", "tools", model, async () => {
    const r = await an.messages.create({ model, max_tokens: 200, messages: [{ role: "user", content: WEATHER }],
      tools: [{ name: "get_weather", description: "Weather", input_schema: params }] });
    check(r.stop_reason === "tool_use", "tool_use");
  });
  await run("vercel-ai", "generateText+tool (openai() = Responses)", model, async () => {
    let called = 0;
    const r = await generateText({ model: vercel(model), prompt: WEATHER, stopWhen: stepCountIs(3),
      tools: { get_weather: tool({ description: "Weather for a city", inputSchema: jsonSchema(params),
        execute: async ({ city }) => { called += 1; return `sunny in ${city}`; } }) } });
    check(called > 0, "tool executed");
    check(r.text, "final text");
  });
  await run("vercel-ai", "streamText (openai() = Responses)", model, async () => {
    const r = streamText({ model: vercel(model), prompt: "Tell me about the sea" });
    let text = "";
    for await (const t of r.textStream) text += t;
    check(text, "streamed text");
  });
  await run("vercel-ai", "generateText (openai.chat())", model, async () => {
    const r = await generateText({ model: vercel.chat(model), prompt: "Tell me about the sea" });
    check(r.text, "text");
  });
}

await run("anthropic-node", "models.list(limit)", "-", async () => {
  const page = await an.models.list({ limit: 2 });
  check(page.data.length === 2 && page.data[0].type === "model" && page.has_more, "page");
});

process.exit(failed ? 1 : 0);
