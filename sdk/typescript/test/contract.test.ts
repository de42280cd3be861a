/** Lockstep with the gateway: versions, paths and request bodies against its own /openapi.json. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { VERSION } from "../src/index.js";
import { PENDING_FIELDS, ROUTES, type Route } from "../src/routes.js";
import { openapi } from "./helpers.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

test("the version follows the gateway's", async () => {
  assert.equal(VERSION, pkg.version);
  assert.equal(VERSION, (await openapi()).info.version);
});

const id = (r: Route) => `${r.method} /v1${r.path}`;

for (const route of ROUTES) {
  test(`the gateway documents ${id(route)}`, async (t) => {
    const op = (await openapi()).paths["/v1" + route.path]?.[route.method.toLowerCase()];
    if (!op && route.issue) return t.skip(`pending issue ${route.issue}: this gateway's /openapi.json has no ${id(route)}`);
    assert.ok(op, `the SDK calls ${id(route)}, which the gateway does not document`);
  });
}

async function bodySchema(route: Route) {
  const doc = await openapi();
  const op = doc.paths["/v1" + route.path]?.[route.method.toLowerCase()];
  if (!op) return null;
  const ref = op.requestBody?.content["application/json"]?.schema.$ref;
  assert.ok(ref, `${id(route)} documents no JSON request body`);
  const schema = doc.components.schemas[ref.split("/").pop()!];
  assert.ok(schema, `no schema ${ref}`);
  return schema;
}

for (const route of ROUTES.filter((r) => r.fields)) {
  test(`request fields of ${id(route)} match /openapi.json`, async (t) => {
    const schema = await bodySchema(route);
    if (!schema) return t.skip(`pending issue ${route.issue}: this gateway's /openapi.json has no ${id(route)}`);
    const gateway = new Set(Object.keys(schema.properties ?? {}));
    const sdk = new Set([...route.fields!, ...(route.fixed ?? [])]);
    assert.deepEqual([...sdk].filter((f) => !gateway.has(f) && !(f in PENDING_FIELDS)), [],
      "the SDK sends fields the gateway does not know");
    assert.deepEqual([...gateway].filter((f) => !sdk.has(f)), [], "the gateway accepts fields the SDK does not offer");
    assert.deepEqual([...(route.required ?? [])].sort(), [...(schema.required ?? [])].sort(), "required fields differ");
  });
  for (const field of route.fields!.filter((f) => f in PENDING_FIELDS)) {
    test(`${id(route)} takes '${field}'`, async (t) => {
      const schema = await bodySchema(route);
      if (!schema) return t.skip(`pending issue ${route.issue}: this gateway's /openapi.json has no ${id(route)}`);
      if (!(field in (schema.properties ?? {}))) {
        return t.skip(`pending issue ${PENDING_FIELDS[field]}: ${id(route)} has no '${field}' yet`);
      }
      assert.ok(field in (schema.properties ?? {}));
    });
  }
}

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
