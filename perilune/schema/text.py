"""Checks on client text that is stored or used as a database key: no NUL characters (PostgreSQL
cannot store them in text), and, where asked, printable characters only. 400 naming the param."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perilune.errors import InvalidRequest

MAX_JSON_DEPTH = 128  # nesting of arrays/objects in a request body; deeper is refused at parse time


def check_text(value: str | None, param: str, *, printable: bool = False) -> None:
    if value is None:
        return
    if "\x00" in value:
        raise InvalidRequest(f"'{param}' must not contain NUL (\\u0000) characters.", param=param,
                             code="invalid_value")
    if printable and not value.isprintable():
        raise InvalidRequest(f"'{param}' must contain printable characters only.", param=param,
                             code="invalid_value")


def check_params(*sources: Mapping[str, str]) -> None:
    """No NUL in any query parameter or path parameter (names included)."""
    for source in sources:
        for name, value in source.items():
            if "\x00" in name or "\x00" in value:
                param = name.replace("\x00", "")
                raise InvalidRequest(f"'{param}' must not contain NUL (\\u0000) characters.", param=param,
                                     code="invalid_value")


def check_fields(obj: Any, prefix: str = "") -> None:
    """No NUL in the string fields (or lists of strings) of a decoded msgspec Struct."""
    for name in getattr(obj, "__struct_fields__", ()):
        value = getattr(obj, name)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                check_text(v, prefix + name)


def check_depth(body: bytes, raw: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit``. A body with fewer opening brackets than the limit
    cannot be that deep, so most requests cost two byte counts; others one walk over containers."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise InvalidRequest(f"The JSON body is nested more than {limit} levels deep.", code="invalid_json")
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
