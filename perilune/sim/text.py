"""Deterministic output generation for the simulator.

Generated text is a slice of a fixed pseudo-English corpus that is built once
at import time.  Every corpus piece is exactly one token for
:func:`perilune.tokens.count_tokens`, so ``count_tokens("".join(generate(s, n)))
== n`` for every seed ``s`` and length ``n``; the simulator therefore reports
usage that matches the text it sent, exactly.

The starting point inside the corpus is chosen from a seed (a CRC32 of the
request's prompt), so the same request always yields the same text.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Any

__all__ = [
    "IMAGE_TOKENS",
    "PER_MESSAGE_TOKENS",
    "REASONING_TOKENS",
    "THINKING_TOKENS",
    "cached_prefix_tokens",
    "generate",
    "generate_text",
    "seed_of",
    "token_logprob",
    "top_logprobs",
    "value_for_schema",
]

#: Fixed per-message overhead added to every message (and to a system prompt)
#: when counting prompt tokens, mirroring the role/separator tokens real chat
#: templates add.
PER_MESSAGE_TOKENS = 4
#: Every image (or other non-text media part) in a prompt counts this many tokens.
IMAGE_TOKENS = 85
#: Hidden reasoning tokens of reasoning models (OpenAI ``*reason*`` ids, Gemini
#: thinking models); they are counted inside the completion token total.
REASONING_TOKENS = 8
#: Length of the visible thinking text of Anthropic extended thinking.
THINKING_TOKENS = 16
#: Prompt-caching emulation threshold (OpenAI and Gemini).
CACHE_MIN_PROMPT = 1024
CACHE_BLOCK = 128

_WORDS = (  # noqa: SIM905
    "the of and to in is that for it as with was on be by this are from or at an "
    "which but not have has can more one all their were will when there been would "
    "other into time only some could them these than then its also two after first "
    "new way may about any each most over such through where much before must back "
    "years good well people even many those because both under system data model "
    "value request answer simple small large quick gateway token stream server "
    "client router cache budget latency message result signal vector channel "
    "window buffer packet record policy context provider sample output input river "
    "garden market forest island planet engine bridge harbor valley signal method "
    "answer pattern figure number moment reason degree matter detail summary "
    "example question problem process service network memory storage compute "
    "account balance quota limit report metric trace event source target origin "
    "region cluster replica shard batch queue worker thread socket handle frame "
    "header payload schema field column table index entry update change version "
    "release feature option setting default runtime kernel module package"
).split()

_CORPUS_PIECES = 16384


def _build_corpus() -> tuple[tuple[str, ...], tuple[int, ...]]:
    pieces: list[str] = []
    starts: list[int] = []
    state = 0x2545F491
    nwords = len(_WORDS)

    def rnd(mod: int) -> int:
        nonlocal state
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        return (state >> 8) % mod

    while len(pieces) < _CORPUS_PIECES:
        starts.append(len(pieces))
        length = 5 + rnd(10)
        comma_at = rnd(length + 4)
        for i in range(length):
            word = _WORDS[rnd(nwords)]
            if i == 0:
                word = word.capitalize()
            pieces.append(" " + word)
            if i == comma_at and i < length - 1:
                pieces.append(",")
        pieces.append(".")
    return tuple(pieces), tuple(starts)


CORPUS, SENTENCE_STARTS = _build_corpus()
_NSTARTS = len(SENTENCE_STARTS)
_CLEN = len(CORPUS)


def seed_of(*parts: str) -> int:
    """Stable 32-bit seed of some request text (CRC32, unlike ``hash()``)."""
    crc = 0
    for p in parts:
        crc = zlib.crc32(p.encode("utf-8", "surrogatepass"), crc)
    return crc


def generate(seed: int, n: int) -> list[str]:
    """``n`` token pieces of deterministic text (first piece has no leading space)."""
    if n <= 0:
        return []
    start = SENTENCE_STARTS[seed % _NSTARTS]
    end = start + n
    if end <= _CLEN:
        out = list(CORPUS[start:end])
    else:
        out = list(CORPUS[start:])
        while len(out) + _CLEN < n:
            out.extend(CORPUS)
        out.extend(CORPUS[: n - len(out)])
    out[0] = out[0].lstrip(" ")
    return out


def generate_text(seed: int, n: int) -> str:
    return "".join(generate(seed, n))


def cached_prefix_tokens(prompt_tokens: int) -> int:
    """Deterministic prompt-cache emulation (OpenAI ``cached_tokens``, Gemini
    ``cachedContentTokenCount``): prompts above 1024 tokens report the largest
    multiple of 128 that is <= ``prompt_tokens - 1`` as cached, else 0."""
    if prompt_tokens <= CACHE_MIN_PROMPT:
        return 0
    return ((prompt_tokens - 1) // CACHE_BLOCK) * CACHE_BLOCK


# --------------------------------------------------------------------------- logprobs


@lru_cache(maxsize=4096)
def token_logprob(piece: str) -> float:
    """A deterministic pseudo log-probability for ``piece`` (always < 0)."""
    return -round(0.0005 + (zlib.crc32(piece.encode()) % 2000) / 2000.0, 6)


def top_logprobs(piece: str, k: int) -> list[tuple[str, float]]:
    """``k`` alternatives for the position of ``piece``, the piece itself first."""
    if k <= 0:
        return []
    lp = token_logprob(piece)
    out = [(piece, lp)]
    h = zlib.crc32(piece.encode())
    lead = " " if piece.startswith(" ") else ""
    i = 1
    while len(out) < k:
        alt = lead + _WORDS[(h + i * 7) % len(_WORDS)]
        if alt != piece and all(alt != o[0] for o in out):
            out.append((alt, round(lp - 1.25 * len(out), 6)))
        i += 1
    return out


# --------------------------------------------------------------------------- schemas


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(part)
    return node if isinstance(node, dict) else {}


def _string_for(name: str, schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2025-01-01"
    if fmt == "date-time":
        return "2025-01-01T00:00:00Z"
    if fmt == "email":
        return "user@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com"
    lname = name.lower()
    if "unit" in lname:
        return "celsius"
    return "Paris"


def value_for_schema(schema: Any, name: str = "", root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A deterministic value that satisfies a (JSON-schema or Gemini OpenAPI) schema.

    Strings become ``"Paris"`` (or a value fitting their ``format``/``unit`` name),
    numbers and integers ``1``, booleans ``true``, arrays hold one item, objects
    get every declared property; ``enum``/``const``/``default`` win when present.
    """
    if not isinstance(schema, dict) or depth > 8:
        return "Paris"
    if root is None:
        root = schema
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        alts = schema.get(key)
        if isinstance(alts, list) and alts:
            for alt in alts:
                if isinstance(alt, dict) and str(alt.get("type", "")).lower() != "null":
                    return value_for_schema(alt, name, root, depth + 1)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if str(t).lower() != "null"), "null")
    typ = str(typ).lower() if typ is not None else ""
    props = schema.get("properties")
    if typ == "object" or isinstance(props, dict):
        if not isinstance(props, dict):
            return {}
        return {k: value_for_schema(v, k, root, depth + 1) for k, v in props.items()}
    if typ == "array":
        return [value_for_schema(schema.get("items", {}), name, root, depth + 1)]
    if typ in ("integer", "number"):
        return 1
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    return _string_for(name, schema)
