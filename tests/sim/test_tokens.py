"""perilune.tokens and the deterministic text generator."""

from __future__ import annotations

import random

from perilune.sim import text as T
from perilune.tokens import count_tokens, split_tokens


def test_split_roundtrip() -> None:
    samples = [
        "",
        "Hello, world!  How are you?\n\n  x",
        "snake_case_name = 12345.678",
        "internationalization",
        "émoji 🎉🎉 ok\ttabs\r\nwindows",
        '{"city":"Paris","days":1}',
    ]
    rnd = random.Random(7)
    alphabet = "ab cd,.!?_\n\t0123456789éü🎉{}\"'"
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 80))) for _ in range(300)]
    for s in samples:
        pieces = split_tokens(s)
        assert "".join(pieces) == s
        assert count_tokens(s) == len(pieces)
        assert all(pieces)


def test_counts() -> None:
    assert count_tokens("Hello, world!") == 4
    assert split_tokens("a  b") == ["a", " ", " b"]
    assert split_tokens("internationalization") == ["internatio", "nalization"]
    assert count_tokens("12345") == 2


def test_generate_is_exact_and_deterministic() -> None:
    for seed in range(300):
        n = (seed * 37) % 250
        pieces = T.generate(seed, n)
        text = "".join(pieces)
        assert count_tokens(text) == n
        assert split_tokens(text) == pieces
        assert not text.startswith(" ")
    assert T.generate(42, 20) == T.generate(42, 20)
    assert count_tokens(T.generate_text(3, 40000)) == 40000  # wraps around the corpus


def test_cache_and_schema_helpers() -> None:
    assert T.cached_prefix_tokens(1024) == 0
    assert T.cached_prefix_tokens(1025) == 1024
    assert T.cached_prefix_tokens(1300) == 1280
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "n": {"type": ["number", "null"]},
            "e": {"enum": ["x", "y"]},
            "a": {"type": "array", "items": {"$ref": "#/$defs/item"}},
            "d": {"type": "string", "format": "date"},
        },
        "$defs": {"item": {"type": "object", "properties": {"ok": {"type": "boolean"}}}},
    }
    assert T.value_for_schema(schema) == {
        "s": "Paris",
        "n": 1,
        "e": "x",
        "a": [{"ok": True}],
        "d": "2025-01-01",
    }
