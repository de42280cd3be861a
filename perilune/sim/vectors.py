"""Deterministic unit-norm embedding vectors, cheap enough for benchmarks.

A vector of ``d`` dimensions (``d`` a multiple of 64) is the concatenation of
``d / 64`` blocks picked by a seed from a fixed pool of 512 random blocks, each
block pre-normalised to norm ``sqrt(64 / d)``; so every vector has norm 1
without any per-request arithmetic.  All values are float32-exact, so the
``float`` and ``base64`` (little-endian float32) encodings carry the same numbers.
Other dimensions take a slower path (truncate + renormalise).
"""

from __future__ import annotations

import base64
import math
import struct
from functools import lru_cache

__all__ = ["embedding", "embedding_b64", "vector_seed"]

BLOCK = 64
POOL = 512


def _f32(values: list[float]) -> tuple[float, ...]:
    n = len(values)
    return struct.unpack(f"<{n}f", struct.pack(f"<{n}f", *values))


def _build_pool() -> list[list[float]]:
    state = 0x9E3779B9
    pool = []
    for _ in range(POOL):
        raw = []
        for _ in range(BLOCK):
            state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            raw.append(((state >> 11) / float(1 << 53)) * 2.0 - 1.0)
        norm = math.sqrt(sum(v * v for v in raw))
        pool.append([v / norm for v in raw])
    return pool


_POOL = _build_pool()


@lru_cache(maxsize=16)
def _scaled(nblocks: int) -> tuple[tuple[tuple[float, ...], ...], tuple[bytes, ...]]:
    s = 1.0 / math.sqrt(nblocks)
    blocks = tuple(_f32([v * s for v in b]) for b in _POOL)
    packed = tuple(struct.pack(f"<{BLOCK}f", *b) for b in blocks)
    return blocks, packed


def _indices(seed: int, nblocks: int) -> list[int]:
    h = seed & 0xFFFFFFFF
    out = []
    for _ in range(nblocks):
        h = (h * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((h >> 7) % POOL)
    return out


def vector_seed(data: bytes) -> int:
    import zlib

    return zlib.crc32(data) ^ (len(data) * 0x9E3779B1 & 0xFFFFFFFF)


def _slow(seed: int, dims: int) -> tuple[float, ...]:
    nb = -(-dims // BLOCK)
    vals = [v for i in _indices(seed, nb) for v in _POOL[i]][:dims]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return _f32([v / norm for v in vals])


def embedding(seed: int, dims: int) -> list[float]:
    if dims <= 0:
        return []
    if dims % BLOCK:
        return list(_slow(seed, dims))
    nb = dims // BLOCK
    blocks, _ = _scaled(nb)
    out: list[float] = []
    for i in _indices(seed, nb):
        out.extend(blocks[i])
    return out


def embedding_b64(seed: int, dims: int) -> str:
    if dims <= 0:
        return ""
    if dims % BLOCK:
        vals = _slow(seed, dims)
        return base64.b64encode(struct.pack(f"<{dims}f", *vals)).decode()
    nb = dims // BLOCK
    _, packed = _scaled(nb)
    return base64.b64encode(b"".join(packed[i] for i in _indices(seed, nb))).decode()
