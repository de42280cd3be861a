"""Copy the parts of OpenAI's OpenAPI spec that the test suite validates against into the repo.

    python scripts/extract_openai_schemas.py path/to/openapi.yaml > tests/fixtures/openai_spec/schemas.json

Keeps ``components.schemas`` reachable from the roots below (unmodified, in JSON). The spec's licence
(MIT) is beside the output as LICENSE.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

ROOTS = ("Response", "ResponseStreamEvent", "ResponseItemList", "CreateResponse", "ErrorResponse",
         "ListModelsResponse", "Model", "CreateCompletionResponse", "CreateChatCompletionResponse",
         "CreateChatCompletionStreamResponse")
PREFIX = "#/components/schemas/"


def closure(schemas: dict[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
    seen: set[str] = set()
    todo = [r for r in roots if r in schemas]

    def refs(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str) and v.startswith(PREFIX):
                    todo.append(v[len(PREFIX):])
                else:
                    refs(v)
        elif isinstance(node, list):
            for v in node:
                refs(v)

    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            refs(schemas[name])
    return {n: schemas[n] for n in sorted(seen)}


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    info = {"source": "openai/openai-openapi openapi.yaml", "version": spec["info"]["version"]}
    out = {"info": info, "components": {"schemas": closure(spec["components"]["schemas"], ROOTS)}}
    json.dump(out, sys.stdout, default=str, sort_keys=True)


if __name__ == "__main__":
    main()
