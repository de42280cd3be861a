"""A real perilune gateway in demo mode (its built-in simulator as the only provider), for the SDKs'
test suites, the README examples and ``make sdk-test``.

    python sdk/testbed.py -- COMMAND...         start it, run COMMAND with the environment below, stop it
    python sdk/testbed.py --plain -- COMMAND... the same, in plain demo mode (without sdk/testbed.toml)

COMMAND sees ``PERILUNE_BASE_URL`` and ``PERILUNE_API_KEY`` (the first key, with the first-run credit),
plus ``PERILUNE_TEST_ADMIN_KEY``, ``PERILUNE_TEST_POOR_KEY`` (an account with no money: 402) and
``PERILUNE_TEST_LIMITED_KEY`` (1 request per minute: 429). The gateway and the simulator are this
checkout's own (``python -m perilune``), so the SDKs are tested against the same commit. Its one
setting beyond demo mode is ``CONFIG`` (sdk/testbed.toml): two router profiles mapped to simulator
models, so that the router can execute as well as decide.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Any of these in the environment would make demo mode serve a real provider instead of the simulator.
_PROVIDER_KEYS = re.compile(r"^(OPENAI|ANTHROPIC|GEMINI|GOOGLE|GROQ|TOGETHER|MISTRAL|DEEPSEEK|FIREWORKS|OPENROUTER|"
                            r"XAI)_API_KEY$|^PERILUNE_")


CONFIG = Path(__file__).resolve().parent / "testbed.toml"


@dataclass
class Testbed:
    __test__ = False  # not a pytest class
    base_url: str  # ends with /v1
    api_key: str
    admin_key: str
    poor_key: str
    limited_key: str
    account_id: str

    def env(self) -> dict[str, str]:
        return {"PERILUNE_BASE_URL": self.base_url, "PERILUNE_API_KEY": self.api_key,
                "PERILUNE_TEST_ADMIN_KEY": self.admin_key, "PERILUNE_TEST_POOR_KEY": self.poor_key,
                "PERILUNE_TEST_LIMITED_KEY": self.limited_key, "PERILUNE_TEST_ACCOUNT_ID": self.account_id}

    @classmethod
    def from_env(cls) -> Testbed | None:
        e = os.environ
        if "PERILUNE_TEST_ADMIN_KEY" not in e:
            return None
        return cls(e["PERILUNE_BASE_URL"], e["PERILUNE_API_KEY"], e["PERILUNE_TEST_ADMIN_KEY"],
                   e["PERILUNE_TEST_POOR_KEY"], e["PERILUNE_TEST_LIMITED_KEY"], e["PERILUNE_TEST_ACCOUNT_ID"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def testbed(python: str = sys.executable, *, config: Path | None = CONFIG) -> Iterator[Testbed]:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="perilune-sdk-") as home:
        admin_key = "pk_admin_sdk_" + secrets.token_hex(16)
        port, sim_port = _free_port(), _free_port()
        env = {k: v for k, v in os.environ.items() if not _PROVIDER_KEYS.match(k)}
        env.update(PERILUNE_ADMIN_KEY=admin_key, PERILUNE_SIMULATOR_PORT=str(sim_port), PERILUNE_LOG_LEVEL="warning")
        log = Path(home) / "gateway.log"
        with log.open("wb") as out:
            cmd = [python, "-m", "perilune", "serve", "--home", home, "--port", str(port)]
            proc = subprocess.Popen(cmd + (["--config", str(config)] if config else []),
                                    cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url + "/health", proc, log)
            found = re.search(r"pk_live_[0-9A-Za-z]+", log.read_text())
            if found is None:
                raise RuntimeError(f"the gateway printed no first key:\n{log.read_text()}")
            key = found.group(0)
            account = _call("GET", url + "/v1/balance", key)["account_id"]
            poor = _call("POST", url + "/admin/accounts", admin_key, {"name": "sdk-tests-poor"})
            poor_key = _call("POST", url + "/admin/keys", admin_key, {"account_id": poor["id"], "name": "poor"})
            limited = _call("POST", url + "/admin/keys", admin_key, {"account_id": account, "name": "limited"})
            _call("PUT", f"{url}/admin/keys/{limited['id']}/limits", admin_key, {"rpm": 1})
            yield Testbed(url + "/v1", key, admin_key, poor_key["key"], limited["key"], account)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s:\n{log.read_text()}")


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    with testbed(config=None if "--plain" in argv[:argv.index("--")] else CONFIG) as tb:
        return subprocess.call(cmd, env={**os.environ, **tb.env()})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
