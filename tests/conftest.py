"""Shared fixtures: the provider simulator and perilune itself, as real processes on real ports."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ADMIN_KEY = "pk_admin_test_secret_for_the_suite_only"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def perilune(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perilune", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=check, timeout=60)


@dataclass
class Gateway:
    url: str
    home: Path
    config: Path
    key: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    admin_key: str = ADMIN_KEY
    account: str = ""

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def new_key(self, *extra: str) -> str:
        out = perilune("keys", "create", "--home", str(self.home), "--config", str(self.config), *extra,
                       env=self.env)
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        if self.proc.poll() is None:
            self.proc.kill()


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "sim", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def default_config(sim_url: str) -> str:
    return f"""
simulator = "never"
log_level = "warning"

[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
forward_headers = ["x-sim-*"]

[[providers]]
name = "openai"
base_url = "{sim_url}/v1"
api_key_env = "TEST_OPENAI_KEY"
forward_headers = ["x-sim-*"]

[[providers]]
name = "groq"
base_url = "{sim_url}/v1"
api_key_env = "TEST_GROQ_KEY"
"""


StartGateway = Callable[..., Gateway]


def first_key(home: Path, cfg: Path, env: dict[str, str], credit_usd: str) -> tuple[str, str]:
    """What `perilune keys create` and `perilune accounts topup` do, in-process (saves two interpreter
    start-ups per gateway; the CLI itself is tested in test_first_run and test_models_keys)."""
    from decimal import Decimal

    from perilune.accounting.pricing import to_pico
    from perilune.settings import load_settings
    from perilune.store.db import Database
    from perilune.store.keys import KeyStore
    from perilune.store.ledger import LedgerStore

    settings = load_settings(cfg, environ={**os.environ, **env}, overrides={"home": str(home)})
    db = Database(settings.db_url)
    try:
        db.migrate()
        store = KeyStore(db)
        account = store.default_account()
        key, _ = store.create_key(account, name="suite")
        if credit_usd:
            LedgerStore(db).add_entry(account, "topup", to_pico(Decimal(credit_usd)), "cli", "test suite")
    finally:
        db.dispose()
    return key, account


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory, sim_url: str) -> Iterator[StartGateway]:
    started: list[Gateway] = []

    def start(config: str | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
              credit_usd: str = "1000") -> Gateway:
        home = tmp_path_factory.mktemp("home")
        cfg = home / "perilune.toml"
        cfg.write_text(default_config(sim_url) if config is None else config.replace("{sim_url}", sim_url))
        # the semantic router's hashing embedder: with the router extra installed, "auto" would load torch
        # into every gateway of the session
        full_env = {"PERILUNE_ADMIN_KEY": ADMIN_KEY, "TEST_OPENAI_KEY": "sk-test-openai",
                    "PERILUNE_ROUTER__EMBEDDER": "hashing", **(env or {})}
        key, account = first_key(home, cfg, full_env, credit_usd)
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(home), "--config",
                                 str(cfg), "--port", str(port), *args], env={**os.environ, **full_env})
        gw = Gateway(f"http://127.0.0.1:{port}", home, cfg, key, proc, full_env, account=account)
        started.append(gw)
        wait_http(gw.url + "/health", proc)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="session")
def gateway(start_gateway: StartGateway) -> Gateway:
    """A gateway in front of the simulator (providers 'sim', 'openai' and 'groq' all point at it)."""
    return start_gateway()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
