/** The retry policy against a real socket that fails on purpose (answering as the gateway does when it
 * refuses: 503 with Retry-After, 502 after running the request). */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";

import { Perilune, RateLimitError, ServiceUnavailableError, UpstreamUnavailableError } from "../src/index.js";

const OK = { object: "balance", account_id: "acct_x", balance_usd: "1.5", currency: "USD", prepaid: true,
  spend_today_usd: "0", spend_month_usd: "0", alerts: { thresholds_usd: [], webhook_url: null } };
let failures: [number, Record<string, string>][] = [];
const seen: { method: string; at: number; app: string | undefined }[] = [];
let server: Server;
let c: Perilune;

before(async () => {
  server = createServer((req, res) => {
    seen.push({ method: req.method ?? "", at: Date.now(), app: req.headers["x-app-id"] as string | undefined });
    req.resume();
    const [status, headers] = failures.shift() ?? [200, {}];
    res.writeHead(status, { ...headers, "Content-Type": "application/json" });
    res.end(JSON.stringify(status === 200 ? OK : { error: { message: "no", type: "t", code: null } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  c = new Perilune({ apiKey: "k", baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, appId: "app-1" });
});

after(() => new Promise<void>((r) => server.close(() => r())));

test("a 503 is retried after its Retry-After", async () => {
  failures = [[503, { "Retry-After": "1" }]];
  seen.length = 0;
  assert.equal((await c.balance.retrieve()).balance_usd, "1.5");
  assert.equal(seen.length, 2);
  assert.ok(seen[1]!.at - seen[0]!.at >= 1000 && seen.every((s) => s.app === "app-1"));
});

test("a POST is retried on 429 but never on 502", async () => {
  failures = [[429, { "Retry-After": "0" }]];
  seen.length = 0;
  await c.balance.setAlerts({ thresholds_usd: ["1"] });
  assert.equal(seen.length, 2);
  failures = [[502, {}]];
  await assert.rejects(c.balance.setAlerts({ thresholds_usd: ["1"] }), UpstreamUnavailableError);
  assert.equal(seen.length, 3);
});

test("a GET is retried on 502 and 504 with backoff", async () => {
  failures = [[502, {}], [504, {}]];
  seen.length = 0;
  await c.balance.retrieve();
  assert.deepEqual(seen.map((s) => s.method), ["GET", "GET", "GET"]);
});

test("retries are bounded; a too-long Retry-After is thrown at once", async () => {
  failures = Array.from({ length: 5 }, () => [503, { "Retry-After": "0" }] as [number, Record<string, string>]);
  seen.length = 0;
  await assert.rejects(c.withOptions({ maxRetries: 2 }).balance.retrieve(), ServiceUnavailableError);
  assert.equal(seen.length, 3);
  failures = [[429, { "Retry-After": "3600" }]];
  seen.length = 0;
  await assert.rejects(c.balance.retrieve(), (e: unknown) => e instanceof RateLimitError && e.retryAfter === 3600);
  assert.equal(seen.length, 1);
  failures = [];
});
