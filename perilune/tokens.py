"""Cheap, deterministic tokenizer approximation.

perilune never ships a real BPE vocabulary: the gateway only needs a stable,
fast estimate of prompt size, and the built-in simulator needs a tokenizer whose
counts it can report exactly.  Both use this module, so a gateway estimate and
the simulator's reported usage agree by construction.

Rules (a simplified GPT-2 style pre-tokenizer, no vocabulary):

* a run of letters (up to 10) with at most one leading space is one token
  (longer words are split every 10 letters);
* a run of 1-3 digits with at most one leading space is one token;
* a run of 1-4 other symbols (punctuation, ``_``, emoji...) with at most one
  leading space is one token;
* whitespace that is not attached to a following token is one token per run.

Every character belongs to exactly one piece, so ``"".join(split_tokens(t)) == t``.
"""

from __future__ import annotations

import re

__all__ = ["TOKEN_PATTERN", "count_tokens", "split_tokens"]

TOKEN_PATTERN = re.compile(
    r"(?> ?[^\W\d_]{1,10})"  # words (unicode letters)
    r"|(?> ?\d{1,3})"  # numbers, in groups of three digits
    r"|(?> ?(?:[^\s\w]|_){1,4})"  # punctuation / symbols / underscores
    r"|\s+(?!\S)"  # trailing whitespace (leaves one space for the next word)
    r"|\s+"  # any other whitespace run
)

_findall = TOKEN_PATTERN.findall


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into token pieces; the pieces join back to ``text`` exactly."""
    return _findall(text)


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (``len(split_tokens(text))``)."""
    if not text:
        return 0
    return len(_findall(text))
