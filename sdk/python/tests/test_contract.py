"""Lockstep with the gateway: versions, paths and request bodies against its own /openapi.json."""

from __future__ import annotations

import ast
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

import perilune_sdk
from perilune_sdk._params import OPTION_KEYS, ProviderPreferences
from perilune_sdk._routes import ROUTES, Route


def test_versions_follow_the_gateway(openapi: dict[str, Any]) -> None:
    gateway = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    ts_pkg = json.loads((ROOT / "sdk/typescript/package.json").read_text())["version"]
    ts_src = re.search(r'VERSION = "([^"]+)"', (ROOT / "sdk/typescript/src/version.ts").read_text())
    assert ts_src is not None
    assert perilune_sdk.__version__ == gateway == ts_pkg == ts_src.group(1) == openapi["info"]["version"]


def _route_id(r: Route) -> str:
    return f"{r.method} {r.path}"


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_every_path_the_sdk_calls_is_in_openapi(route: Route, openapi: dict[str, Any]) -> None:
    path = "/v1" + route.path
    op = openapi["paths"].get(path, {}).get(route.method.lower())
    assert op is not None, f"the SDK calls {route.method} {path}, which the gateway does not document"


def _schema(doc: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    name = ref.rsplit("/", 1)[-1]
    found: dict[str, Any] = doc["components"]["schemas"][name]
    return found


BODY_ROUTES = [r for r in ROUTES if r.body is not None]


def _body_schema(route: Route, doc: dict[str, Any]) -> dict[str, Any]:
    path = "/v1" + route.path
    op = doc["paths"].get(path, {}).get(route.method.lower())
    assert op is not None, f"{route.method} {path} is not in the gateway's /openapi.json"
    assert "requestBody" in op, f"{route.method} {path} documents no request body"
    return _schema(doc, op["requestBody"]["content"]["application/json"]["schema"])


def _sdk_fields(route: Route) -> tuple[set[str], set[str]]:
    """(all body fields, required ones) of the route's TypedDict, without per-call options."""
    td: Any = route.body
    fields = (set(td.__required_keys__) | set(td.__optional_keys__)) - OPTION_KEYS
    return fields | set(route.fixed), set(td.__required_keys__) - OPTION_KEYS


@pytest.mark.parametrize("route", BODY_ROUTES, ids=_route_id)
def test_request_fields_match_openapi(route: Route, openapi: dict[str, Any]) -> None:
    schema = _body_schema(route, openapi)
    gateway_fields = set(schema.get("properties", {}))
    sdk_fields, sdk_required = _sdk_fields(route)
    assert sdk_fields - gateway_fields == set(), "the SDK sends fields the gateway does not know"
    assert gateway_fields - sdk_fields == set(), "the gateway accepts fields the SDK does not offer"
    assert sdk_required == set(schema.get("required", [])), "required fields differ"


def test_provider_preferences_match_openapi(openapi: dict[str, Any]) -> None:
    """The object form of ``provider`` (every routed body refers to the same schema)."""
    schema = openapi["components"]["schemas"]["ProviderPrefs"]
    assert set(ProviderPreferences.__optional_keys__) == set(schema["properties"])
    (sort,) = [s for s in schema["properties"]["sort"]["anyOf"] if "enum" in s]
    assert set(typing.get_args(ProviderPreferences.__annotations__["sort"])) == set(sort["enum"])


def _calls_in(source: Path) -> set[tuple[str, str]]:
    """(method, path) of every ``self._c._load/_json/_stream(...)`` call in a client module."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("_load", "_json", "_stream")
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "_c"):
            continue
        strings = [a for a in node.args if isinstance(a, ast.Constant | ast.JoinedStr)]
        texts = ["".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in s.values)
                 if isinstance(s, ast.JoinedStr) else str(s.value) for s in strings]
        method = "POST" if node.func.attr == "_stream" else texts[0]
        found.add((method, texts[-1]))
    return found


@pytest.mark.parametrize("module", ["_client.py", "_async_client.py"])
def test_the_route_table_lists_every_call(module: str) -> None:
    """The checks above cover every route the clients really call (read from their source)."""
    calls = _calls_in(Path(perilune_sdk.__file__).parent / module)
    table = {(r.method, re.sub(r"\{\w+\}", "{}", r.path)) for r in ROUTES}
    assert len(calls) >= 20
    assert calls - table == set(), "the client calls routes the table (and so the openapi check) misses"
    assert table - calls == set(), "the table lists routes no client method calls"
