"""When the slowest requests at concurrency 1 happen: the p99 of one client at a time, and the moments
of the requests at or above it, with the gaps between them.

    python -m bench.tail [--seconds 6] [--latency-ms 0] [--set 'usage_flush_s = 30.0'] [--pin]

Starts perilune as ``bench.perf`` does (SQLite, accounting on, one key with a balance, the fake upstream),
warms it for 2 s, then sends one chat request at a time over one keep-alive connection. A periodic
cause (a flush every ``usage_flush_s``, a refresh loop) shows as slow requests clustered at that period.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

import orjson

from bench.perf import Bench


async def one_at_a_time(port: int, key: str, seconds: float) -> list[tuple[float, float]]:
    body = orjson.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    try:
        while (start := time.perf_counter()) - t0 < seconds:
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            out.append((start - t0, time.perf_counter() - start))
    finally:
        writer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="the fake upstream's latency")
    ap.add_argument("--set", action="append", default=[], help="a top-level setting line (repeatable)")
    ap.add_argument("--code", default="", help="a checkout whose perilune to run (PYTHONPATH)")
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--port", type=int, default=19770)
    a = ap.parse_args()
    b = Bench.single(a.port, pin=a.pin, settings=a.set, code=a.code)
    try:
        b.start_upstream()
        b.configure_upstream(a.latency_ms)
        b.start_gateway()
        asyncio.run(one_at_a_time(a.port, b.key, 2.0))  # warm-up
        samples = asyncio.run(one_at_a_time(a.port, b.key, a.seconds))
    finally:
        b.stop()
    lat = sorted(d for _, d in samples)
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    slow = [t for t, d in samples if d >= p99]
    gaps = [b - a for a, b in itertools.pairwise(slow)]
    print(f"{len(samples)} requests, p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms, max {lat[-1] * 1000:.3f} ms")
    print("requests at or above the p99, at (s):", " ".join(f"{t:.3f}" for t in slow))
    print("gaps between them (s):", " ".join(f"{g:.3f}" for g in gaps))


if __name__ == "__main__":
    main()
