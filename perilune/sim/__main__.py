"""``python -m perilune.sim [--host H] [--port P] [knobs...]``."""

from __future__ import annotations

import argparse

from .app import run
from .common import FAULTS, SimConfig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="perilune sim", description="perilune provider simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8788)
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--ttft-ms", type=float, default=0)
    p.add_argument("--tokens-per-s", type=float, default=0)
    p.add_argument("--chunks", type=int, default=None)
    p.add_argument("--chunk-delay-ms", type=float, default=0)
    p.add_argument("--output-tokens", type=int, default=16)
    p.add_argument("--fault", choices=sorted(FAULTS), default=None)
    p.add_argument("--api-key", default=None)
    a = p.parse_args(argv)
    cfg = SimConfig(
        latency_ms=a.latency_ms,
        ttft_ms=a.ttft_ms,
        tokens_per_s=a.tokens_per_s,
        chunks=a.chunks,
        fault=a.fault,
        output_tokens=a.output_tokens,
        api_key=a.api_key,
        chunk_delay_ms=a.chunk_delay_ms,
    )
    run(a.host, a.port, cfg)


if __name__ == "__main__":
    main()
