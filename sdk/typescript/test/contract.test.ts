/** Lockstep with the gateway: versions, paths and request bodies against its own /openapi.json. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { VERSION } from "../src/index.js";
import type { ProviderPreferences } from "../src/index.js";
import { ROUTES, type Route } from "../src/routes.js";
import { openapi } from "./helpers.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

test("the version follows the gateway's", async () => {
  assert.equal(VERSION, pkg.version);
  assert.equal(VERSION, (await openapi()).info.version);
});

const id = (r: Route) => `${r.method} /v1${r.path}`;

for (const route of ROUTES) {
  test(`the gateway documents ${id(route)}`, async () => {
    const op = (await openapi()).paths["/v1" + route.path]?.[route.method.toLowerCase()];
    assert.ok(op, `the SDK calls ${id(route)}, which the gateway does not document`);
  });
}

async function bodySchema(route: Route) {
  const doc = await openapi();
  const op = doc.paths["/v1" + route.path]?.[route.method.toLowerCase()];
  assert.ok(op, `${id(route)} is not in the gateway's /openapi.json`);
  const ref = op.requestBody?.content["application/json"]?.schema.$ref;
  assert.ok(ref, `${id(route)} documents no JSON request body`);
  const schema = doc.components.schemas[ref.split("/").pop()!];
  assert.ok(schema, `no schema ${ref}`);
  return schema;
}

for (const route of ROUTES.filter((r) => r.fields)) {
  test(`request fields of ${id(route)} match /openapi.json`, async () => {
    const schema = await bodySchema(route);
    const gateway = new Set(Object.keys(schema.properties ?? {}));
    const sdk = new Set([...route.fields!, ...(route.fixed ?? [])]);
    assert.deepEqual([...sdk].filter((f) => !gateway.has(f)), [], "the SDK sends fields the gateway does not know");
    assert.deepEqual([...gateway].filter((f) => !sdk.has(f)), [], "the gateway accepts fields the SDK does not offer");
    assert.deepEqual([...(route.required ?? [])].sort(), [...(schema.required ?? [])].sort(), "required fields differ");
  });
}

// The keys of ProviderPreferences, proven complete at compile time; then checked against the gateway's schema.
const PREFS = ["order", "only", "ignore", "sort", "allow_fallbacks"] as const satisfies readonly (keyof ProviderPreferences)[];
const SORTS = ["price", "latency", "throughput"] as const satisfies readonly NonNullable<ProviderPreferences["sort"]>[];
type _AllPrefs = Exclude<keyof ProviderPreferences, (typeof PREFS)[number]> extends never ? true : never;
type _AllSorts = Exclude<NonNullable<ProviderPreferences["sort"]>, (typeof SORTS)[number]> extends never ? true : never;
const _complete: [_AllPrefs, _AllSorts] = [true, true];

test("the provider preference object matches /openapi.json", async () => {
  assert.deepEqual(_complete, [true, true]);
  const schema = (await openapi()).components.schemas["ProviderPrefs"]!;
  assert.deepEqual([...PREFS].sort(), Object.keys(schema.properties ?? {}).sort());
  const sort = (schema.properties?.["sort"] as { anyOf: { enum?: string[] }[] }).anyOf.find((x) => x.enum);
  assert.deepEqual([...SORTS].sort(), [...(sort?.enum ?? [])].sort());
});

test("the route table lists every call of the client (read from its source)", () => {
  const source = readFileSync(new URL("../../src/client.ts", import.meta.url), "utf8");
  const calls = new Set<string>();
  for (const m of source.matchAll(/this\.client\.(json|stream)(?:<[^>]*>)?\(\s*(?:"(GET|POST|DELETE)",\s*)?(?:\w+,\s*)?["`]([^"`]+)["`]/g)) {
    const method = m[1] === "stream" ? "POST" : m[2]!;
    calls.add(`${method} ${m[3]!.replace(/\$\{[^}]+\}/g, "{}")}`);
  }
  const table = new Set(ROUTES.map((r) => `${r.method} ${r.path.replace(/\{\w+\}/g, "{}")}`));
  assert.ok(calls.size >= 20, `found only ${calls.size} calls`);
  assert.deepEqual([...calls].filter((x) => !table.has(x)), [], "the client calls routes the table misses");
  assert.deepEqual([...table].filter((x) => !calls.has(x)), [], "the table lists routes no client method calls");
});
