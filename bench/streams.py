"""Streaming load: N concurrent SSE streams, measuring time to the first content chunk and the largest
gap between chunks. Runs in a child process so its CPU does not share a core with the caller."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp

STREAM_HEADERS = {"x-sim-chunks": "64", "x-sim-chunk-delay-ms": "20", "x-sim-output-tokens": "64"}
BODY = {"model": "sim-gpt", "messages": [{"role": "user", "content": "Stream to the benchmark"}], "stream": True,
        "max_tokens": 64}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


MESSAGES_BODY = {"model": "sim-claude", "stream": True, "max_tokens": 64,
                 "messages": [{"role": "user", "content": "Stream to the benchmark"}]}


async def one(session: aiohttp.ClientSession, url: str, headers: dict[str, str], dialect: str = "openai",
              model: str = "sim-gpt") -> tuple[float, float, int]:
    t0 = time.perf_counter()
    ttft = None
    last = None
    max_gap = 0.0
    chunks = 0
    if dialect == "anthropic":
        path, body, marker = "/v1/messages", {**MESSAGES_BODY, "model": model}, b'"text_delta"'
        headers = {**headers, "anthropic-version": "2023-06-01"}
    else:
        path, body, marker = "/v1/chat/completions", {**BODY, "model": model}, b'"content"'
    async with session.post(url + path, json=body, headers={**headers, **STREAM_HEADERS}) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
        async for line in r.content:
            if not line.startswith(b"data: {"):
                continue
            now = time.perf_counter()
            if marker not in line:
                continue
            chunks += 1
            if ttft is None:
                ttft = now - t0
            if last is not None:
                max_gap = max(max_gap, now - last)
            last = now
    return (ttft or 0.0) * 1000, max_gap * 1000, chunks


async def load(url: str, headers: dict[str, str], concurrency: int, total: int, dialect: str = "openai",
               model: str = "sim-gpt") -> dict[str, Any]:
    ttfts: list[float] = []
    gaps: list[float] = []
    chunks: list[int] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def task() -> None:
            nonlocal errors
            async with sem:
                try:
                    t, g, c = await one(session, url, headers, dialect, model)
                except Exception:
                    errors += 1
                    return
                ttfts.append(t)
                gaps.append(g)
                chunks.append(c)
        await asyncio.gather(*(task() for _ in range(total)))
    return {
        "ttft_ms": {"p50": round(pct(ttfts, 50), 3), "p99": round(pct(ttfts, 99), 3)},
        "max_gap_ms": {"p50": round(pct(gaps, 50), 3), "p99": round(pct(gaps, 99), 3),
                       "max": round(max(gaps or [0]), 3)},
        "chunks_per_stream": round(sum(chunks) / max(len(chunks), 1), 1),
        "errors": errors,
    }


def run(url: str, headers: dict[str, str], *, concurrency: int, total: int, dialect: str = "openai",
        model: str = "sim-gpt") -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.streams", url, json.dumps(headers), str(concurrency),
                          str(total), dialect, model], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    u, h, c, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(load(u, h, c, n, sys.argv[5], sys.argv[6]))))
