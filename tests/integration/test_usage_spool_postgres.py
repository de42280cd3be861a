"""Usage records survive a PostgreSQL outage: the gateway talks to the real server through a TCP proxy
this test controls; cutting it mid-run makes the database unreachable (the gateway keeps serving and
spools usage to disk), restoring it replays the spool; stopping the gateway during an outage and
starting it again replays at start. Afterwards every request id is present exactly once, and the
rollups count each once."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import ADMIN_KEY, free_port, perilune, wait_http
from tests.services import fresh_postgres

pytestmark = pytest.mark.postgres


class Proxy:
    """A TCP proxy to 127.0.0.1:5432 that can be cut (every connection closed, new ones refused)."""

    def __init__(self, target_port: int = 5432) -> None:
        self.port = free_port()
        self.target = ("127.0.0.1", target_port)
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open = False
        self.restore()

    def restore(self) -> None:
        with self._lock:
            self._open = True
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            self._open = False  # a connection accepted just now is closed as soon as it is registered
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self._open:
                    client.close()
                    upstream.close()
                    continue
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


def serve(home: Path, cfg: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(home), "--config", str(cfg),
                             "--port", str(port)], env={**os.environ, **env})
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


def test_outage_spools_and_replays_exactly_once(pg_url: str, sim_url: str, tmp_path: Path) -> None:
    proxy = Proxy()
    db_name = pg_url.rsplit("/", 1)[1]
    home = tmp_path / "home"
    home.mkdir()
    cfg = home / "perilune.toml"
    cfg.write_text(f"""
simulator = "never"
log_level = "warning"
prepaid = false
usage_flush_s = 0.05
database_url = "postgresql://postgres@127.0.0.1:{proxy.port}/{db_name}"

[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
""")
    env = {"PERILUNE_ADMIN_KEY": ADMIN_KEY}
    key = perilune("keys", "create", "--home", str(home), "--config", str(cfg), env=env).stdout.split()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sent: list[str] = []

    def send(n: int) -> None:
        for i in range(n):
            body = {"model": "sim-gpt", "messages": [{"role": "user", "content": f"hello {i}"}],
                    "stream": i % 3 == 0, "observability": i % 4 == 0}
            r = httpx.post(url + "/v1/chat/completions", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {key}", "X-App-ID": "outage"})
            assert r.status_code == 200, r.text
            sent.append(r.headers["x-request-id"])

    def stored() -> list[str]:
        with psycopg.connect(pg_url) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM usage_records")]

    def wait_all(timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while sorted(stored()) != sorted(sent):
            assert time.monotonic() < deadline, (len(stored()), len(sent))
            time.sleep(0.1)

    gw = serve(home, cfg, port, env)
    try:
        send(10)
        wait_all()
        proxy.cut()  # the database goes away mid-run
        send(15)  # the gateway keeps serving from its key cache; usage goes to the spool
        deadline = time.monotonic() + 20
        while not list((home / "spool").glob("usage-*.jsonl")):
            assert time.monotonic() < deadline, "nothing spooled"
            time.sleep(0.05)
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
        assert ready.json()["usage_spool_bytes"] > 0
        proxy.restore()
        wait_all()  # replayed once the database answers
        deadline = time.monotonic() + 5  # /ready caches its answer for a second
        while httpx.get(url + "/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proxy.cut()
        send(12)
        stop(gw)  # shut down during the outage: pending usage is spooled, not lost
        assert list((home / "spool").glob("usage-*.jsonl"))
    finally:
        if gw.poll() is None:
            stop(gw)
    proxy.restore()
    gw = serve(home, cfg, port, env)  # the next start replays what the last one spooled
    try:
        wait_all()
        send(3)
        wait_all()
    finally:
        stop(gw)
        proxy.cut()
    ids = stored()
    assert len(ids) == len(set(ids)) == len(sent) == 40
    with psycopg.connect(pg_url) as conn:
        hourly = conn.execute("SELECT sum(requests) FROM usage_rollups").fetchone()
        daily = conn.execute("SELECT sum(requests) FROM usage_rollups_daily").fetchone()
        payloads = conn.execute("SELECT count(*) FROM usage_payloads").fetchone()
    assert hourly == daily == (40,)
    assert payloads == (sum(len(range(0, n, 4)) for n in (10, 15, 12, 3)),)  # observability: i % 4 == 0
    assert not list((home / "spool").glob("usage-*"))
