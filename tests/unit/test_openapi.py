"""/openapi.json documents every route the app registers, with every path parameter, and is a valid
OpenAPI 3.1 document (checked by the schemathesis loader the fuzz test uses)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from perilune import __version__
from perilune.api.openapi_doc import openapi_document
from perilune.app import build_app
from perilune.settings import load_settings


@pytest.mark.parametrize("models_require_key", [False, True])
def test_every_route_is_documented(tmp_path: Path, models_require_key: bool) -> None:
    settings = load_settings(None, environ={}, overrides={"home": str(tmp_path),
                                                          "models_require_key": models_require_key})
    app = build_app(settings, migrate=False)
    doc = openapi_document(__version__)
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "*"):
            continue  # HEAD comes with every GET; "*" is the 404/405 fallback
        if path == "/dashboard/static":
            path = "/dashboard/static/{filename}"
        routes.add((path, route.method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes == set(), "documented routes that do not exist"
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert in_path == names, (path, in_path)


def test_issue_routes_are_there() -> None:
    paths = openapi_document(__version__)["paths"]
    for path in ("/v1/balance", "/v1/balance/alerts", "/admin/accounts/{account_id}/topup",
                 "/admin/accounts/{account_id}/ledger", "/admin/accounts/{account_id}/limits",
                 "/admin/keys/{key_id}/limits", "/admin/accounts/{account_id}/alerts", "/admin/identities"):
        assert path in paths


def test_schemathesis_loads_the_document() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    doc = openapi_document(__version__)
    schema = schemathesis.openapi.from_dict(doc)
    ops = list(schema.get_all_operations())
    assert len(ops) == sum(len(methods) for methods in doc["paths"].values())
    assert all(op.ok() for op in ops)
