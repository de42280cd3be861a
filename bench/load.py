"""Closed-loop HTTP/1.1 load generator; prints one JSON object.

    python bench/load.py --url http://127.0.0.1:19700/v1/chat/completions --body-file req.json \
        [--api-key KEY] [-c 64] [-d 8 -w 2 | -n 1000000] [--stream]

``-c`` workers each keep one keep-alive connection and send the same request back to back. In duration
mode only answers completed inside the measured window (after the warm-up) count; ``total`` is every
answer completed during the run (for CPU per request: the gateway's CPU over the whole run divided by
``total``). Reported: rps, latency p50/p90/p99/max (whole answer), for streams TTFT (first ``data:``)
and the largest gap between two reads of one stream (``gap_ms``, a stall shows there), errors by kind.
The client is a small asyncio protocol (uvloop when installed) so that it costs little CPU itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import time
import urllib.parse
from typing import Any, cast

now = time.perf_counter


class Answer:
    __slots__ = ("done", "end", "error", "gap", "last", "status", "ttft")

    def __init__(self) -> None:
        self.status = 0
        self.end = 0.0
        self.ttft: float | None = None
        self.gap = 0.0
        self.last = 0.0
        self.done = False
        self.error: str | None = None


class Client(asyncio.Protocol):
    """One connection, one request at a time; parses Content-Length and chunked answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[Answer] | None = None
        self.ans = Answer()
        self.state = "idle"
        self.need = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end("closed")

    def send(self, payload: bytes) -> asyncio.Future[Answer]:
        self.ans, self.state = Answer(), "head"
        self.buf.clear()
        self.fut = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            self._end("closed")
        else:
            self.transport.write(payload)
        return self.fut

    def _end(self, error: str | None = None) -> None:
        if self.fut is not None and not self.fut.done():
            self.ans.error, self.ans.end = error, now()
            self.fut.set_result(self.ans)
        self.state = "idle"

    def _piece(self, piece: bytes | bytearray, t: float) -> None:
        a = self.ans
        if b"data:" in piece:
            if a.ttft is None:
                a.ttft = t
            elif t - a.last > a.gap:
                a.gap = t - a.last
            a.last = t
            if b"[DONE]" in piece:
                a.done = True

    def data_received(self, data: bytes) -> None:
        if self.state == "idle":
            return
        t = now()
        buf = self.buf
        buf += data
        if self.state == "head":
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            lines = bytes(buf[:i]).decode("latin-1").lower().split("\r\n")
            self.ans.status = int(lines[0].split(" ", 2)[1])
            chunked = any(ln.startswith("transfer-encoding:") and "chunked" in ln for ln in lines)
            length = next((int(ln.split(":", 1)[1]) for ln in lines if ln.startswith("content-length:")), 0)
            del buf[:i + 4]
            self.state, self.need = ("chunk", 0) if chunked else ("length", length)
        if self.state == "length":
            take = min(self.need, len(buf))
            self._piece(buf[:take], t)
            self.need -= take
            del buf[:take]
            if self.need <= 0:
                self._end()
            return
        pos = 0
        while True:
            j = buf.find(b"\r\n", pos)
            if j < 0:
                break
            size = int(bytes(buf[pos:j]).split(b";")[0], 16)
            if size == 0:
                if buf.find(b"\r\n\r\n", j) < 0:
                    break
                buf.clear()
                self._end()
                return
            if len(buf) < j + 2 + size + 2:
                break
            self._piece(buf[j + 2:j + 2 + size], t)
            pos = j + 4 + size
        del buf[:pos]


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    return round(xs[max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))] * 1000, 3)


def summary(xs: list[float]) -> dict[str, float | None] | None:
    if not xs:
        return None
    xs.sort()
    return {"p50": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99), "max": round(xs[-1] * 1000, 3)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    body = open(args.body_file, "rb").read() if args.body_file else (args.body or "").encode()
    stream = args.stream or b'"stream":true' in body.replace(b" ", b"")
    head = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]
    if args.api_key:
        head.append(f"Authorization: Bearer {args.api_key}")
    payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(Client, host, port))[1] for _ in range(args.concurrency)]
    lat: list[float] = []
    ttft: list[float] = []
    gaps: list[float] = []
    errors: dict[str, int] = {}
    counts = {"total": 0, "issued": 0, "incomplete": 0}
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = now()
    counted_from = t_start + (args.warmup if args.requests is None else 0.0)
    deadline = counted_from + args.duration if args.requests is None else math.inf

    async def worker(conn: Client) -> None:
        while now() < deadline:
            if args.requests is not None:
                if counts["issued"] >= args.requests:
                    return
                counts["issued"] += 1
            if conn.closed:
                conn = (await loop.create_connection(Client, host, port))[1]
            t0 = now()
            a = await asyncio.wait_for(conn.send(payload), args.timeout)
            if a.error is None:
                counts["total"] += 1
            if not counted_from <= a.end <= deadline:
                continue
            kind = a.error or (None if 200 <= a.status < 300 else f"http_{a.status}")
            if kind is None and stream and not a.done:
                kind = "incomplete_stream"
            if kind is not None:
                errors[kind] = errors.get(kind, 0) + 1
                continue
            lat.append(a.end - t0)
            if stream and a.ttft is not None:
                ttft.append(a.ttft - t0)
                gaps.append(a.gap)

    await asyncio.gather(*(worker(c) for c in conns))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    window = args.duration if args.requests is None else now() - t_start
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    out: dict[str, Any] = {"concurrency": args.concurrency, "stream": stream, "ok": len(lat),
                           "total": counts["total"], "errors": errors, "rps": round(len(lat) / window, 1),
                           "latency_ms": summary(lat),
                           "load_cpu_pct": round(100 * (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
                                                 / max(now() - t_start, 1e-9), 1)}
    if stream:
        out["ttft_ms"], out["gap_ms"] = summary(ttft), summary(gaps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--body")
    ap.add_argument("--body-file")
    ap.add_argument("--api-key")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=8.0)
    ap.add_argument("-w", "--warmup", type=float, default=1.0)
    ap.add_argument("-n", "--requests", type=int, help="send exactly N requests instead of a duration")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
