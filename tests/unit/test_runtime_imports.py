"""The gateway runs with its own dependencies only: no module of the package may need one that only the
test extra installs (a fresh `make serve` has none of them)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

PROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("-", "_") for r in requirements}


# what the test extra installs and the gateway's own dependencies do not (import names, where they differ)
ALIASES = {"pyyaml": "yaml"}
TEST_ONLY = sorted(ALIASES.get(n, n) for n in _names(PROJECT["optional-dependencies"]["test"])
                   - _names(PROJECT["dependencies"]))

PROBE = """
import importlib, pkgutil, sys
for name in sys.argv[1:]:
    sys.modules[name] = None  # importing it now raises ImportError, as in an install without the test extra
import perilune
failed = []
for m in pkgutil.walk_packages(perilune.__path__, "perilune."):
    if m.name.endswith("__main__") or ".migrations" in m.name:
        continue
    try:
        importlib.import_module(m.name)
    except ImportError as e:
        failed.append(f"{m.name}: {e}")
print("\\n".join(failed))
"""


def test_every_module_imports_without_the_test_dependencies() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, *TEST_ONLY], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "", out
