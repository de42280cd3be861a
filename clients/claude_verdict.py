"""Reads `claude -p --output-format json` output on stdin; prints PASS or FAIL with the evidence.

A pass: a successful result, not an error, at least two turns (the model called a tool, got its result
and answered), and a non-empty answer."""

import json
import sys

lines = sys.stdin.read().strip().splitlines()
try:
    d = json.loads(lines[-1])
except (IndexError, json.JSONDecodeError) as e:
    print(f"FAIL unparseable output ({e}): {' '.join(lines)[-300:]}")
    sys.exit()
ok = d.get("subtype") == "success" and not d.get("is_error") and d.get("num_turns", 0) >= 2 and bool(d.get("result"))
usage = d.get("usage") or {}
evidence = (f"turns={d.get('num_turns')} input_tokens={usage.get('input_tokens')} "
            f"output_tokens={usage.get('output_tokens')}")
print(("PASS " if ok else "FAIL ") + evidence + ("" if ok else " " + json.dumps(d)[:300]))
