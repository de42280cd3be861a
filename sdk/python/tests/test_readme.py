"""The README's examples run as written, against the testbed's demo-mode gateway (key and base URL from
the environment, as a user would have them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from testbed import Testbed

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```python\n(?P<code>.*?)```", re.S)
EXAMPLES = [m.group("code") for m in BLOCK.finditer(README.read_text())]


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i + 1}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code: str, tb: Testbed) -> None:
    env = {**os.environ, "PERILUNE_API_KEY": tb.api_key, "PERILUNE_BASE_URL": tb.base_url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "an example that prints nothing shows nothing"


def test_readme_examples_type_check(tmp_path: Path) -> None:
    """What a user copies must also pass ``mypy --strict`` against the SDK's types."""
    files = []
    for i, code in enumerate(EXAMPLES):
        f = tmp_path / f"example_{i + 1}.py"
        f.write_text(code)
        files.append(str(f))
    env = {**os.environ, "MYPYPATH": str(README.parent)}
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *files], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
