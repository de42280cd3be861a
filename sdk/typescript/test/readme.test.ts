/** The README's examples run as written (as .mjs files importing "@perilune/sdk"), against the
 * testbed's demo-mode gateway. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { test } from "node:test";

import { testbed } from "./helpers.js";

const run = promisify(execFile);
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);

test("the README has examples", () => {
  assert.ok(blocks.length >= 5);
});

blocks.forEach((code, i) => {
  test(`README example ${i + 1}`, async () => {
    // inside the package, so that `import ... from "@perilune/sdk"` resolves to it (package self-reference)
    const file = fileURLToPath(new URL(`../readme-example-${i + 1}.mjs`, import.meta.url));
    writeFileSync(file, code);
    const tb = testbed();
    const { stdout } = await run(process.execPath, [file], {
      env: { ...process.env, PERILUNE_API_KEY: tb.apiKey, PERILUNE_BASE_URL: tb.baseURL }, timeout: 60_000,
    });
    assert.ok(stdout.trim().length > 0, "an example that prints nothing shows nothing");
  });
});
