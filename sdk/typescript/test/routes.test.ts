/** The providers' health, fallbacks, the semantic router, feedback and the Responses API. The testbed maps
 * two router profiles to simulator models (router.aliases), so the router can also execute. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidRequestError, NotFoundError } from "../src/index.js";
import { HI, client, unique, waitRecords } from "./helpers.js";
import { assertDeclared } from "./shapes.js";

const c = client();
const QUESTION = [{ role: "user" as const, content: "What is the derivative of x**3 * sin(x)? Show the steps." }];

test("providers: list and per model", async () => {
  const every = await c.providers.list();
  assert.ok(every.some((p) => p.provider === "sim" && p.ready && p.models.includes("sim-gpt")));
  every.forEach((p) => assertDeclared("ProviderInfo", p));
  const one = await c.providers.forModel("sim-gpt");
  assert.equal(one.model, "sim-gpt");
  const h = one.providers[0]!;
  assert.equal(h.provider, "sim");
  assert.ok(["ok", "degraded", "down"].includes(h.status));
  assert.ok(h.ready && h.type === "openai" && h.context === 128000 && ["closed", "open", "half_open"].includes(h.breaker));
  assert.equal(h.price.unit, "USD per million tokens");
  assert.equal(one.served_model, "sim-gpt");
  assertDeclared("ProviderHealth", h);
  assertDeclared("ModelProviders", one);
  for (const k of ["latency_ms_p50", "ttft_ms_p50", "throughput_tps", "error_rate", "requests"]) assert.ok(k in h, k);
  await assert.rejects(c.providers.forModel("no-such-model"), (e: unknown) => e instanceof NotFoundError && e.param === "model");
});

test("fallbacks and fallback_model are accepted", async () => {
  const app = unique("ts-fallbacks");
  const r = await c.chat.create({ model: "sim-gpt", messages: HI, fallbacks: ["sim-claude"] }, { appId: app });
  assert.equal(r.model, "sim-gpt");
  const m = await c.messages.create({ model: "sim-claude", max_tokens: 8, messages: HI, fallback_model: "sim-gpt" },
    { appId: app });
  assert.equal(m.model, "sim-claude");
  assert.deepEqual(new Set((await waitRecords(c, 2, app)).map((x) => x.model_served)), new Set(["sim-gpt", "sim-claude"]));
});

test("router: the decision only", async () => {
  const d = await c.router.decide({ messages: QUESTION, cost_weight: 0 });
  assert.ok(d.model && d.candidates.length > 0 && typeof d.routing_ms === "number" && d.cost_weight === 0);
  for (const x of d.candidates) {
    assert.ok(x.predicted_quality >= 0 && x.predicted_quality <= 1 && typeof x.expected_cost_usd === "string");
    assert.ok(Number.isInteger(x.expected_cost_pusd) && typeof x.servable === "boolean");
    assertDeclared("RouterCandidate", x);
  }
  assertDeclared("RouterDecision", d);
  assert.ok(d.object === "router.decision" && d.embedder && d.cluster.k > 0 && d.cluster.index >= 0);
  const best = [...d.candidates].sort((a, b) => a.score - b.score)[0]!;
  assert.equal(d.model, best.model);
  await assert.rejects(c.router.decide({ messages: QUESTION, cost_weight: -1 }),
    (e: unknown) => e instanceof InvalidRequestError && e.param === "cost_weight");
});

test("router: execute, streamed and not", async () => {
  const r = await c.router.create({ messages: HI, max_tokens: 8 });
  assert.ok(r.router?.model && r.choices[0]?.message.content && typeof r.usage.total_cost_usd === "string");
  assert.ok(["sim-gpt", "sim-claude"].includes(r.router.served_model ?? "") && r.model === r.router.served_model);
  assertDeclared("ChatCompletion", r);
  const s = await (await c.router.stream({ messages: HI, max_tokens: 8 })).untilDone();
  assert.ok(s.text && s.usage && s.routedModel);
});

test("router profiles", async () => {
  const profiles = await c.router.profiles();
  assertDeclared("RouterProfiles", profiles);
  assert.ok(profiles.data.length >= 2 && profiles.embedder && profiles.provenance);
  for (const p of profiles.data) {
    assertDeclared("RouterProfile", p);
    assert.ok(p.id && p.quality.length === profiles.clusters && p.quality.every((q) => q >= 0 && q <= 1));
    assert.ok(typeof p.mean_cost_usd === "string" && p.validation_size > 0);
  }
  const servable = profiles.data.filter((p) => p.servable).map((p) => p.id);
  assert.ok(servable.includes("mistralai/mistral-7b-chat") && servable.includes("gpt-4-1106-preview"));
});

test("feedback", async () => {
  const app = unique("ts-feedback");
  await c.chat.create({ model: "sim-gpt", messages: HI }, { appId: app });
  const [rec] = await waitRecords(c, 1, app);
  const fb = await c.feedback.create({ request_id: rec!.id, score: 0.75 });
  assert.deepEqual(fb, { object: "feedback", request_id: rec!.id, score: 0.75 });
  await assert.rejects(c.feedback.create({ request_id: rec!.id, score: 2 }),
    (e: unknown) => e instanceof InvalidRequestError && e.param === "score");
});

test("responses: create, stream, retrieve, delete", async () => {
  const r = await c.responses.create({ model: "sim-gpt", input: "Say hello", instructions: "Be brief." });
  assert.equal(r.object, "response");
  assert.equal(r.status, "completed");
  assert.ok(r.usage && r.usage.total_cost_usd !== undefined);
  const s = await c.responses.stream({ model: "sim-gpt", input: "Say hello" });
  const kinds: string[] = [];
  for await (const ev of s) kinds.push(ev.type);
  assert.equal(kinds[0], "response.created");
  assert.equal(kinds.at(-1), "response.completed");
  assert.ok(s.responseObject && s.text);
  assert.equal((await c.responses.retrieve(r.id)).id, r.id);
  assert.ok((await c.responses.inputItems(r.id)).length > 0);
  await c.responses.delete(r.id);
  await assert.rejects(c.responses.retrieve(r.id), NotFoundError);
});
