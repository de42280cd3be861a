"""Fixtures: the provider simulator served by uvicorn on a free port in a thread."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import perilune.sim  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from perilune.sim import SimConfig, make_server

API_KEY = "sk-sim-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(config: SimConfig) -> Iterator[str]:
    port = _free_port()
    server: Any = make_server("127.0.0.1", port, config)
    thread = threading.Thread(target=server.run, name=f"perilune-sim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """Base URL of a simulator with default settings (no auth)."""
    yield from _serve(SimConfig())


@pytest.fixture(scope="session")
def sim_auth_url() -> Iterator[str]:
    """Base URL of a simulator that requires the API key ``API_KEY``."""
    yield from _serve(SimConfig(api_key=API_KEY))
