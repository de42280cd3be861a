"""Is CPU per request higher when requests are sparse, for any Python code on this machine?

    taskset -c 1 python bench/coldwarm.py [--gap-ms 0 1 5 20] [--calls 300]

Runs the same fixed piece of Python work (JSON decode + encode of a chat request and answer, a few
dict and string operations: roughly what a proxy does per request) back to back, and then with a sleep
of ``gap`` ms between calls, and prints the thread CPU time per call (``time.thread_time_ns``, so
sleeping is not counted). When the per-call CPU grows with the gap, sparse requests are dearer because
of the machine (caches and branch predictors refilled after the core ran something else or idled,
idle-state exits inside the VM), not because of extra work done per request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

BODY = json.dumps({"model": "bench-model", "max_tokens": 128, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write one short sentence about load testing."}]})
ANSWER = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "bench-model",
                     "choices": [{"index": 0, "finish_reason": "stop", "message": {
                         "role": "assistant", "content": "Load testing shows where a system bends. " * 3}}],
                     "usage": {"prompt_tokens": 25, "completion_tokens": 20, "total_tokens": 45}})


def work() -> int:
    n = 0
    for _ in range(20):
        req = json.loads(BODY)
        req["model"] = req["model"].upper()
        ans = json.loads(ANSWER)
        ans["usage"]["cost"] = sum(len(m["content"]) for m in req["messages"])
        n += len(json.dumps(ans)) + len({k.lower(): v for k, v in req.items()})
    return n


def measure(gap_s: float, calls: int) -> float:
    samples = []
    for _ in range(calls):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.thread_time_ns()
        work()
        samples.append(time.thread_time_ns() - t0)
    return statistics.median(samples) / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gap-ms", type=float, nargs="+", default=[0, 1, 5, 20])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    measure(0, 50)  # warm-up
    for r in range(args.rounds):
        print(f"round {r + 1}: " + "  ".join(
            f"gap {g:g} ms: {measure(g / 1000, args.calls):.1f} us/call" for g in args.gap_ms), flush=True)


if __name__ == "__main__":
    main()
