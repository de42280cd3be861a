// A tour of what only perilune has, against a gateway in demo mode (`perilune serve` with no provider
// key): the key comes from PERILUNE_API_KEY (and the URL from PERILUNE_BASE_URL, default
// http://127.0.0.1:8787/v1). Run it with `node tour.mjs` in a project that installed @perilune/sdk;
// it exits non-zero when a check fails.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { InsufficientBalanceError, Perilune, RateLimitError } from "@perilune/sdk";

const HI = [{ role: "user", content: "Hello!" }];
const app = `tour-ts-${randomUUID().slice(0, 8)}`;
const client = new Perilune({ appId: app }); // X-App-ID on every call of this client

// chat: cost and timings as typed fields (money: exact decimal strings)
const r = await client.chat.create({ model: "sim-gpt", messages: HI, max_tokens: 16 });
assert.ok(Number(r.usage.total_cost_usd) > 0 && r.usage.charged_usd === r.usage.total_cost_usd);
assert.ok(r.usage.latency_ms > 0 && r.usage.ttft_ms > 0);
console.log(`chat    ${r.provider}/${r.model}: ${JSON.stringify(r.choices[0].message.content)} ` +
  `cost $${r.usage.total_cost_usd} latency ${r.usage.latency_ms} ms ttft ${r.usage.ttft_ms} ms`);

// the same, streamed: typed chunks, then the usage of the whole stream
const stream = await client.chat.stream({ model: "sim-gpt", messages: HI, max_tokens: 16 });
let text = "";
for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
assert.ok(text && stream.usage.total_cost_usd && stream.usage.ttft_ms !== undefined);
console.log(`stream  ${JSON.stringify(text)} cost $${stream.usage.total_cost_usd} ttft ${stream.usage.ttft_ms} ms`);

// appId in the usage log (records are written within a second of the response)
let records = [];
for (const deadline = Date.now() + 15_000; records.length < 2 && Date.now() < deadline;) {
  await new Promise((done) => setTimeout(done, 200));
  records = [];
  for await (const x of client.usage.records.iter({ app })) records.push(x);
}
assert.deepEqual(records.map((x) => x.app), [app, app]);
console.log(`usage   ${records.length} records with app=${app}: ` +
  records.map((x) => `${x.id} $${x.cost.total_usd}`).join(", "));

// the router's decision only (execute: false): every candidate's predicted quality, cost and score
const question = [{ role: "user", content: "Prove that the square root of 2 is irrational." }];
const d = await client.router.decide({ messages: question, cost_weight: 0.5 });
assert.equal(d.model, [...d.candidates].sort((a, b) => a.score - b.score)[0].model);
const best = d.candidates[0];
console.log(`router  ${d.model} of ${d.candidates.length} candidates (quality ${best.predicted_quality}, ` +
  `$${best.expected_cost_usd}) in ${d.routing_ms} ms, embedder ${d.embedder}`);

// the providers and their health
const providers = await client.providers.list();
assert.ok(providers.some((p) => p.provider === "sim" && p.models.includes("sim-gpt")));
const h = (await client.providers.forModel("sim-gpt")).providers[0];
console.log(`provid. ${providers.map((p) => `${p.provider} (${p.models.length} models)`).join(", ")}; ` +
  `sim-gpt on ${h.provider}: ${h.status}, breaker ${h.breaker}, ttft p50 ${h.ttft_ms_p50} ms`);

// the balance
const b = await client.balance.retrieve();
assert.ok(Number(b.balance_usd) > 0);
console.log(`balance $${b.balance_usd} (spent today $${b.spend_today_usd})`);

// a 402 and a 429 as typed errors
await assert.rejects( // 128 answers of up to 65,536 tokens may cost $20.97: more than the demo account's $10
  client.chat.create({ model: "sim-gemini", messages: HI, n: 128, max_tokens: 65_536 }),
  (e) => {
    assert.ok(e instanceof InsufficientBalanceError && e.status === 402);
    console.log(`402     ${e.name} ${e.code}: ${e.message}`);
    return true;
  });
await assert.rejects( // the simulator refuses this one as a rate-limited provider would
  client.chat.create({ model: "sim-gpt", messages: HI }, { maxRetries: 0, headers: { "x-sim-fault": "429" } }),
  (e) => {
    assert.ok(e instanceof RateLimitError && e.status === 429 && e.retryAfter !== null);
    console.log(`429     ${e.name} ${e.code}: retry after ${e.retryAfter} s`);
    return true;
  });
console.log("ok");
