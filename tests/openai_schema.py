"""Validate bodies and stream events against OpenAI's official OpenAPI schemas (tests/fixtures/openai_spec)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC = Path(__file__).resolve().parent / "fixtures" / "openai_spec" / "schemas.json"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (still used in places) as JSON Schema 2020-12."""
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") is True:
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@functools.cache
def _document() -> dict[str, Any]:
    doc = json.loads(SPEC.read_text())
    return {"components": _nullable(doc["components"])}


@functools.cache
def validator(name: str) -> Draft202012Validator:
    doc = _document()
    resource = Resource.from_contents(doc, default_specification=_dialect())
    registry: Registry[Any] = Registry().with_resource("urn:openai", resource)
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


def _dialect() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def check(name: str, obj: Any) -> None:
    """Raise AssertionError naming every violation of schema ``name`` (e.g. "Response") in ``obj``."""
    errors = sorted(validator(name).iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:10]]
        raise AssertionError(f"{name} violates OpenAI's schema:\n" + "\n".join(lines))


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Stream event ``type`` -> the name of its schema (the members of ResponseStreamEvent)."""
    schemas = _document()["components"]["schemas"]
    out: dict[str, str] = {}
    for member in schemas["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[-1]
        enum = schemas[name].get("properties", {}).get("type", {}).get("enum") or []
        if enum:
            out[enum[0]] = name
    return out


def check_event(event: dict[str, Any]) -> None:
    """One Responses stream event against the schema of its type (and the ResponseStreamEvent union)."""
    name = _event_schemas().get(str(event.get("type")))
    if name is None:
        raise AssertionError(f"{event.get('type')!r} is not a Responses stream event type")
    check(name, event)
    check("ResponseStreamEvent", event)
