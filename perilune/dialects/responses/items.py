"""Input items as they are stored and listed (``ItemResource`` in OpenAI's spec), and the resolution of
``item_reference`` items against stored ones.

Stored input items carry an id (the client's, or one perilune gives) and a status; a message's string
content becomes a content list (``input_text`` for user, system and developer turns, ``output_text``
for assistant turns), as ``GET /v1/responses/{id}/input_items`` returns them.
"""

from __future__ import annotations

from typing import Any

from perilune.dialects.responses.from_hub import new_id, text_part
from perilune.errors import InvalidRequest
from perilune.schema.canonical import JSON

PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}


def _parts(content: Any, assistant: bool) -> list[Any]:
    if isinstance(content, str):
        return [text_part(content) if assistant else {"type": "input_text", "text": content}]
    if not isinstance(content, list):
        return []
    if assistant:
        return [{**text_part(str(p.get("text") or "")), **p} if isinstance(p, dict) and p.get("type") == "output_text"
                else p for p in content]
    return [{**p, "detail": p.get("detail") or "auto"} if isinstance(p, dict) and p.get("type") == "input_image"
            else p for p in content]


def stored_item(item: JSON) -> JSON:
    """An input item in its stored (listable) form."""
    typ = item.get("type") or ("message" if "role" in item else None)
    out: JSON = {**item, "type": typ}
    if not out.get("id"):
        out["id"] = new_id(PREFIXES.get(str(typ), "item_"))
    if typ == "message":
        out["content"] = _parts(item.get("content"), item.get("role") == "assistant")
        out.setdefault("status", "completed")
    elif typ in ("function_call", "function_call_output"):
        out.setdefault("status", "completed")
    return out


def references(items: list[Any]) -> list[str]:
    """The ids of the ``item_reference`` items of an input."""
    return [str(i["id"]) for i in items if isinstance(i, dict) and i.get("type") == "item_reference"
            and isinstance(i.get("id"), str)]


def resolve(items: list[Any], found: dict[str, JSON]) -> list[Any]:
    """Replace each ``item_reference`` with the stored item it names (a 400 when there is none)."""
    out: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            ref = found.get(str(item.get("id")))
            if ref is None:
                raise InvalidRequest(f"Item with id '{item.get('id')}' not found.", param=f"input[{i}].id",
                                     code="invalid_value")
            out.append(ref)
        else:
            out.append(item)
    return out
