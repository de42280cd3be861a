/** The client against a real gateway in demo mode (simulator upstream). */
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  APIConnectionError, APITimeoutError, AuthenticationError, InsufficientBalanceError, InvalidRequestError,
  NotFoundError, Perilune, PeriluneError, RateLimitError, UpstreamRateLimitedError, UpstreamUnavailableError,
} from "../src/index.js";
import { HI, client, testbed, unique, waitRecords } from "./helpers.js";
import { assertDeclared } from "./shapes.js";

const c = client();
/** Money as the gateway sends it: a plain decimal string (never a float, never exponent notation). */
const isMoney = (v: unknown): boolean => typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v);

test("key and base URL from the environment; default base URL", async () => {
  const tb = testbed();
  const fromEnv = new Perilune();
  assert.equal(fromEnv.baseURL, tb.baseURL);
  assert.equal((await fromEnv.balance.retrieve()).account_id, tb.accountId);
  const saved = process.env["PERILUNE_API_KEY"];
  delete process.env["PERILUNE_API_KEY"];
  try {
    assert.throws(() => new Perilune(), (e: unknown) => e instanceof PeriluneError && /PERILUNE_API_KEY/.test(e.message));
  } finally {
    process.env["PERILUNE_API_KEY"] = saved;
  }
  const savedURL = process.env["PERILUNE_BASE_URL"];
  delete process.env["PERILUNE_BASE_URL"];
  try {
    assert.equal(new Perilune({ apiKey: "k" }).baseURL, "http://127.0.0.1:8787/v1");
  } finally {
    process.env["PERILUNE_BASE_URL"] = savedURL;
  }
});

test("chat: cost and timings as typed fields", async () => {
  const r = await c.chat.create({ model: "sim-gpt", messages: HI, max_tokens: 16 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.provider, "sim");
  assert.ok(r.choices[0]?.message.content);
  assertDeclared("ChatCompletion", r);
  assertDeclared("Usage", r.usage);
  const u = r.usage;
  assert.equal(u.total_tokens, u.prompt_tokens + (u.completion_tokens ?? 0));
  assert.ok(isMoney(u.total_cost_usd) && Number(u.total_cost_usd) > 0 && u.charged_usd === u.total_cost_usd);
  for (const k of ["input_cost_usd", "output_cost_usd", "cache_input_cost_usd"] as const) assert.ok(isMoney(u[k]), k);
  assert.ok((u.latency_ms ?? 0) > 0 && (u.ttft_ms ?? 0) > 0 && (u.ttft_ms ?? 0) <= (u.latency_ms ?? 0));
});

test("chat stream: typed chunks, then the final usage with cost", async () => {
  const s = await c.chat.stream({ model: "sim-gpt", messages: HI });
  let text = "";
  let n = 0;
  for await (const chunk of s) {
    n++;
    assert.equal(chunk.object, "chat.completion.chunk");
    assertDeclared("ChatCompletionChunk", chunk);
    text += chunk.choices[0]?.delta.content ?? "";
  }
  assert.ok(n > 2 && text.length > 0);
  assert.equal(s.text, text);
  assert.equal(s.provider, "sim");
  assert.ok(s.usage && isMoney(s.usage.total_cost_usd) && Number(s.usage.total_cost_usd) > 0 && s.usage.ttft_ms !== undefined);
  assert.ok(s.requestId?.startsWith("req_"));
});

test("appId per client and per call shows in the usage log", async () => {
  const appClient = unique("ts-client-app");
  const appCall = unique("ts-call-app");
  const own = new Perilune({ apiKey: testbed().apiKey, baseURL: testbed().baseURL, appId: appClient });
  await own.chat.create({ model: "sim-gpt", messages: HI });
  await (await own.chat.stream({ model: "sim-gpt", messages: HI }, { appId: appCall })).untilDone();
  const perClient = await waitRecords(own, 1, appClient);
  const perCall = await waitRecords(own, 1, appCall);
  assert.deepEqual(perClient.map((r) => [r.app, r.endpoint, r.stream, r.status]), [[appClient, "chat", false, 200]]);
  assert.deepEqual(perCall.map((r) => [r.app, r.endpoint, r.stream, r.status]), [[appCall, "chat", true, 200]]);
});

test("completions, embeddings, messages", async () => {
  const comp = await c.completions.create({ model: "sim-gpt", prompt: "Say hi", max_tokens: 5 });
  assert.equal(comp.usage.completion_tokens, 5);
  assertDeclared("Completion", comp);
  const cs = await (await c.completions.stream({ model: "sim-gpt", prompt: "Say hi", max_tokens: 5 })).untilDone();
  assert.equal(cs.text, comp.choices[0]?.text);
  assert.equal(cs.usage?.total_cost_usd, comp.usage.total_cost_usd);
  const emb = await c.embeddings.create({ model: "sim-embed", input: ["one", "two"], dimensions: 4 });
  assert.equal(emb.data.length, 2);
  assertDeclared("Embeddings", emb);
  assert.equal((emb.data[0]?.embedding as number[]).length, 4);
  const b64 = await c.embeddings.create({ model: "sim-embed", input: "one", dimensions: 4, encoding_format: "base64" });
  assert.equal(typeof b64.data[0]?.embedding, "string");
  const m = await c.messages.create({ model: "sim-claude", max_tokens: 32, messages: HI, system: "Be brief." });
  assert.equal(m.type, "message");
  assertDeclared("Message", m);
  assertDeclared("MessageUsage", m.usage);
  assert.ok(isMoney(m.usage.total_cost_usd) && Number(m.usage.total_cost_usd) > 0);
  const ms = await c.messages.stream({ model: "sim-claude", max_tokens: 32, messages: HI });
  const kinds: string[] = [];
  for await (const ev of ms) kinds.push(ev.type);
  assert.equal(kinds[0], "message_start");
  assert.equal(kinds.at(-1), "message_stop");
  assert.equal(ms.text, m.content.map((b) => b.text ?? "").join(""));
  assert.ok(ms.usage && Number(ms.usage.total_cost_usd) > 0 && ms.stopReason && ms.provider);
  assertDeclared("MessageUsage", ms.usage);
  assert.ok((await c.messages.countTokens({ model: "sim-claude", messages: HI })).input_tokens > 0);
});

test("models with input/output filters", async () => {
  const every = await c.models.list();
  const embed = await c.models.list({ output: ["embedding"] });
  const vision = await c.models.list({ input: ["text", "image"] });
  assert.ok(embed.length < every.length && embed.some((m) => m.id === "sim-embed"));
  for (const m of every) assertDeclared("ModelInfo", m);
  assert.ok(embed.every((m) => m.outputModalities.includes("embedding")));
  assert.ok(vision.length > 0 && vision.every((m) => m.inputModalities.includes("image")));
  assert.equal((await c.models.retrieve("sim-gpt")).id, "sim-gpt");
  await assert.rejects(c.models.list({ input: ["smell"] }), (e: unknown) => e instanceof InvalidRequestError && e.param === "input");
});

test("balance and alert settings", async () => {
  const b = await c.balance.retrieve();
  assert.equal(b.currency, "USD");
  assertDeclared("Balance", b);
  assert.ok(Number(b.balance_usd) > 0);
  const after = await c.balance.setAlerts({ thresholds_usd: ["5", "0.5"], webhook_url: "https://alerts.example.com/hook" });
  assert.deepEqual(after.alerts, { thresholds_usd: ["5", "0.5"], webhook_url: "https://alerts.example.com/hook" });
  await c.balance.setAlerts({ thresholds_usd: [], webhook_url: null });
});

test("usage records paginate by cursor; aggregates", async () => {
  const app = unique("ts-pages");
  for (let i = 0; i < 5; i++) await c.chat.create({ model: "sim-gpt", messages: HI, max_tokens: 4 }, { appId: app });
  await waitRecords(c, 5, app);
  const got: string[] = [];
  for await (const r of c.usage.records.iter({ app, pageSize: 2 })) got.push(r.id);
  assert.equal(new Set(got).size, 5);
  const first = await c.usage.records.list({ app, limit: 2 });
  assert.ok(first.has_more && first.next_cursor);
  assertDeclared("UsagePage", first);
  for (const r of first.data) assertDeclared("UsageRecord", r);
  const second = await c.usage.records.list({ app, limit: 2, cursor: first.next_cursor });
  assert.ok(second.data.every((r) => !first.data.some((f) => f.id === r.id)));
  const one = await c.usage.records.retrieve(got[0]!);
  assertDeclared("UsageRecord", one);
  assert.equal(one.usage.completion_tokens, 4);
  assert.deepEqual(Object.keys(one.cost).sort(), ["cache_usd", "charged_usd", "input_usd", "output_usd", "total_usd",
    "unit_usd"]);
  assert.ok(isMoney(one.cost.total_usd) && one.cost.charged_usd === one.cost.total_usd);
  const agg = await c.usage.aggregate({ group_by: "app", app });
  assert.deepEqual(agg.data.map((r) => [r.group, r.requests, r.tokens.output]), [[{ app }, 5, 20]]);
  assert.ok(isMoney(agg.data[0]!.cost_usd.total) && Number(agg.data[0]!.cost_usd.total) > 0);
  assertDeclared("UsageAggregate", agg);
  assertDeclared("AggregateRow", agg.data[0]);
});

test("typed errors: 400 with param, 401, 404", async () => {
  await assert.rejects(c.chat.create({ model: "sim-gpt", messages: HI, temperature: 9 }),
    (e: unknown) => e instanceof InvalidRequestError && e.status === 400 && e.param === "temperature" && !!e.requestId);
  const bad = new Perilune({ apiKey: "pk_live_wrong", baseURL: testbed().baseURL });
  await assert.rejects(bad.balance.retrieve(), (e: unknown) => e instanceof AuthenticationError && e.status === 401);
  await assert.rejects(c.chat.create({ model: "no-such-model", messages: HI }),
    (e: unknown) => e instanceof NotFoundError && e.param === "model");
  await assert.rejects(c.messages.create({ model: "no-such-model", max_tokens: 8, messages: HI }), NotFoundError);
});

test("402 insufficient balance", async () => {
  const poor = new Perilune({ apiKey: testbed().poorKey, baseURL: testbed().baseURL });
  await assert.rejects(poor.chat.create({ model: "sim-gpt", messages: HI }),
    (e: unknown) => e instanceof InsufficientBalanceError && e.status === 402 && e.code === "insufficient_balance");
});

test("429 rate limited, with retryAfter", async () => {
  const limited = new Perilune({ apiKey: testbed().limitedKey, baseURL: testbed().baseURL, maxRetries: 0 });
  const twice = async () => {
    for (let i = 0; i < 2; i++) await limited.chat.create({ model: "sim-gpt", messages: HI, max_tokens: 4 });
  };
  await assert.rejects(twice(), (e: unknown) => e instanceof RateLimitError && !e.upstream && e.status === 429 &&
    e.retryAfter !== null && e.retryAfter > 0 && e.retryAfter <= 60);
});

test("an upstream 429 is retried after its Retry-After", async () => {
  const app = unique("ts-retried");
  const started = Date.now();
  await assert.rejects(
    c.chat.create({ model: "sim-gpt", messages: HI }, { appId: app, maxRetries: 1, headers: { "x-sim-fault": "429" } }),
    (e: unknown) => e instanceof UpstreamRateLimitedError && e instanceof RateLimitError && e.retryAfter === 2);
  assert.ok(Date.now() - started >= 2000);
  assert.deepEqual((await waitRecords(c, 2, app)).map((r) => r.status), [429, 429]);
});

test("an error in the middle of a stream", async () => {
  const s = await c.chat.stream({ model: "sim-gpt", messages: HI }, { headers: { "x-sim-fault": "error-event" } });
  await assert.rejects(s.untilDone(), (e: unknown) => e instanceof UpstreamUnavailableError && e.upstream);
});

test("timeout and connection errors", async () => {
  await assert.rejects(c.chat.create({ model: "sim-gpt", messages: HI },
    { timeout: 300, maxRetries: 0, headers: { "x-sim-latency-ms": "3000" } }), APITimeoutError);
  const nowhere = new Perilune({ apiKey: "k", baseURL: "http://127.0.0.1:9/v1", maxRetries: 1 });
  await assert.rejects(nowhere.balance.retrieve(), APIConnectionError);
});

test("extraBody reaches the gateway", async () => {
  await assert.rejects(c.chat.create({ model: "sim-gpt", messages: HI }, { extraBody: { n: 0 } }),
    (e: unknown) => e instanceof InvalidRequestError && e.param === "n");
});
