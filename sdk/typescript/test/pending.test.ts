/** Routes that gateway issues in progress add. Each test names its route and issue: it is skipped,
 * saying so, while the gateway's /openapi.json lacks the route, and must pass once it has it. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidRequestError, NotFoundError } from "../src/index.js";
import { HI, client, pending, unique, waitRecords } from "./helpers.js";

const c = client();
const QUESTION = [{ role: "user" as const, content: "What is the derivative of x**3 * sin(x)? Show the steps." }];

test("providers: list and per model [issue 9, GET /v1/providers]", async (t) => {
  const why = await pending("/v1/providers", 9);
  if (why) return t.skip(why);
  assert.ok((await c.providers.list()).some((p) => p.provider === "sim"));
  const one = await c.providers.forModel("sim-gpt");
  assert.equal(one.model, "sim-gpt");
  const h = one.providers[0]!;
  assert.equal(h.provider, "sim");
  assert.ok(["ok", "degraded", "down"].includes(h.status));
  for (const k of ["price", "context", "latency_ms_p50", "ttft_ms_p50", "throughput_tps", "error_rate", "requests"]) {
    assert.ok(k in h, k);
  }
  await assert.rejects(c.providers.forModel("no-such-model"), (e: unknown) => e instanceof NotFoundError && e.param === "model");
});

test("fallbacks and fallback_model are accepted [issue 9, body field 'fallbacks']", async (t) => {
  const why = await pending("/v1/chat/completions", 9, "fallbacks");
  if (why) return t.skip(why);
  const app = unique("ts-fallbacks");
  const r = await c.chat.create({ model: "sim-gpt", messages: HI, fallbacks: ["sim-claude"] }, { appId: app });
  assert.equal(r.model, "sim-gpt");
  const m = await c.messages.create({ model: "sim-claude", max_tokens: 8, messages: HI, fallback_model: "sim-gpt" },
    { appId: app });
  assert.equal(m.model, "sim-claude");
  assert.deepEqual(new Set((await waitRecords(c, 2, app)).map((x) => x.model_served)), new Set(["sim-gpt", "sim-claude"]));
});

test("router: the decision only [issue 10, POST /v1/router]", async (t) => {
  const why = await pending("/v1/router", 10);
  if (why) return t.skip(why);
  const d = await c.router.decide({ messages: QUESTION, cost_weight: 0 });
  assert.ok(d.model && d.candidates.length > 0 && typeof d.routing_ms === "number" && d.cost_weight === 0);
  for (const x of d.candidates) {
    assert.ok(x.predicted_quality >= 0 && x.predicted_quality <= 1 && typeof x.expected_cost_usd === "number");
  }
  const best = [...d.candidates].sort((a, b) => a.score - b.score)[0]!;
  assert.equal(d.model, best.model);
  await assert.rejects(c.router.decide({ messages: QUESTION, cost_weight: -1 }),
    (e: unknown) => e instanceof InvalidRequestError && e.param === "cost_weight");
});

test("router: execute, streamed and not [issue 10, POST /v1/router]", async (t) => {
  const why = await pending("/v1/router", 10);
  if (why) return t.skip(why);
  const r = await c.router.create({ messages: HI, max_tokens: 8 });
  assert.ok(r.router?.model && r.choices[0]?.message.content && r.usage.total_cost_usd !== undefined);
  const s = await (await c.router.stream({ messages: HI, max_tokens: 8 })).untilDone();
  assert.ok(s.text && s.usage && s.routedModel);
});

test("router profiles [issue 10, GET /v1/router/profiles]", async (t) => {
  const why = await pending("/v1/router/profiles", 10);
  if (why) return t.skip(why);
  const profiles = await c.router.profiles();
  assert.ok(profiles.length >= 2 && profiles.every((p) => p.model ?? p.id));
});

test("feedback [issue 10, POST /v1/feedback]", async (t) => {
  const why = await pending("/v1/feedback", 10);
  if (why) return t.skip(why);
  const app = unique("ts-feedback");
  await c.chat.create({ model: "sim-gpt", messages: HI }, { appId: app });
  const [rec] = await waitRecords(c, 1, app);
  assert.ok(await c.feedback.create({ request_id: rec!.id, score: 0.75 }));
  await assert.rejects(c.feedback.create({ request_id: rec!.id, score: 2 }),
    (e: unknown) => e instanceof InvalidRequestError && e.param === "score");
});

test("responses: create, stream, retrieve, delete [issue 11, POST /v1/responses]", async (t) => {
  const why = await pending("/v1/responses", 11);
  if (why) return t.skip(why);
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
