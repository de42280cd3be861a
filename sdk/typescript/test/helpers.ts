import { Perilune, type UsageRecord } from "../src/index.js";

/** The testbed's environment (sdk/testbed.py; `make sdk-test` starts it). */
export function testbed(): Record<"baseURL" | "apiKey" | "poorKey" | "limitedKey" | "accountId", string> {
  const e = process.env;
  const missing = ["PERILUNE_BASE_URL", "PERILUNE_API_KEY", "PERILUNE_TEST_POOR_KEY", "PERILUNE_TEST_LIMITED_KEY",
    "PERILUNE_TEST_ACCOUNT_ID"].filter((k) => !e[k]);
  if (missing.length) {
    throw new Error(`These tests need a running gateway: run them with \`make sdk-test\`, or as ` +
      `\`python sdk/testbed.py -- npm test\` (missing ${missing.join(", ")})`);
  }
  return { baseURL: e["PERILUNE_BASE_URL"]!, apiKey: e["PERILUNE_API_KEY"]!, poorKey: e["PERILUNE_TEST_POOR_KEY"]!,
    limitedKey: e["PERILUNE_TEST_LIMITED_KEY"]!, accountId: e["PERILUNE_TEST_ACCOUNT_ID"]! };
}

export interface OpenAPI {
  info: { version: string };
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { $ref?: string } }> } }>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }> };
}

let doc: Promise<OpenAPI> | undefined;

export function openapi(): Promise<OpenAPI> {
  doc ??= fetch(testbed().baseURL.replace(/\/v1$/, "") + "/openapi.json").then((r) => r.json() as Promise<OpenAPI>);
  return doc;
}

export const HI = [{ role: "user" as const, content: "Hello!" }];

export function unique(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Usage records are written in batches after the response: poll until `want` are there. */
export async function waitRecords(client: Perilune, want: number, app: string): Promise<UsageRecord[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const got: UsageRecord[] = [];
    for await (const r of client.usage.records.iter({ app })) got.push(r);
    if (got.length >= want || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function client(appId = "sdk-ts-tests"): Perilune {
  const tb = testbed();
  return new Perilune({ apiKey: tb.apiKey, baseURL: tb.baseURL, appId });
}
