"""Start-up as an operator meets it: the port, Redis and the database are checked before perilune says
it is listening or shows a first key; each failure is one line and a non-zero exit, never a traceback.
The demo simulator takes a free port, and the banner names the dashboard."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port, wait_http
from tests.integration.test_first_run import clean_env


def serve(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perilune", "serve", "--home", str(home), *args],
                          capture_output=True, text=True, env=clean_env(**env), timeout=60)


def assert_one_clean_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "pk_live_" not in r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def no_key_created(home: Path) -> bool:
    db = home / "perilune.db"
    if not db.exists():
        return True
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 0


def test_busy_port_is_one_line_suggesting_another_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = serve(tmp_path / "h", "--port", str(port))
    line = assert_one_clean_line(r)
    assert f"port {port} is already in use" in line and "--port" in line and "PERILUNE_PORT" in line
    assert no_key_created(tmp_path / "h")


def test_unreachable_redis_is_one_line_and_no_key(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    r = serve(tmp_path / "h", "--port", str(free_port()), "--workers", "2",
              PERILUNE_REDIS_URL=f"redis://:hunter2@127.0.0.1:{dead}/0")
    line = assert_one_clean_line(r)
    assert f"cannot reach Redis at redis://***@127.0.0.1:{dead}/0" in line and "PERILUNE_REDIS_URL" in line
    assert "hunter2" not in r.stderr
    assert no_key_created(tmp_path / "h")


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    dead = free_port()
    r = serve(tmp_path / "h", "--port", str(free_port()),
              PERILUNE_DATABASE_URL=f"postgresql://perilune:s3cret@127.0.0.1:{dead}/perilune")
    line = assert_one_clean_line(r)
    assert f"cannot use the database at postgresql://perilune:***@127.0.0.1:{dead}/perilune" in line
    assert "s3cret" not in r.stderr


def test_bad_host_and_bad_port_values(tmp_path: Path) -> None:
    line = assert_one_clean_line(serve(tmp_path / "h", "--host", "203.0.113.7", "--port", str(free_port())))
    assert "203.0.113.7 is not an address of this machine" in line and "--host" in line
    r = serve(tmp_path / "h", "--port", "70000")
    assert r.returncode == 2 and "port must be 1..65535" in r.stderr and "Traceback" not in r.stderr
    r = serve(tmp_path / "h", PERILUNE_SIMULATOR_PORT="-1")
    assert r.returncode == 2 and "simulator_port" in r.stderr


def start_demo(home: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", str(home), "--port", str(port)],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def test_two_demo_gateways_each_get_a_simulator_and_the_banner_names_the_dashboard(tmp_path: Path) -> None:
    procs = [start_demo(tmp_path / f"h{i}") for i in range(2)]
    outs = []
    try:
        for proc, port in procs:
            wait_http(f"http://127.0.0.1:{port}/health", proc, timeout_s=60)
        for _, port in procs:
            assert httpx.get(f"http://127.0.0.1:{port}/health").json()["status"] == "ok"
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            outs.append(proc.communicate(timeout=30))
    sims = []
    for (out, err), (_, port) in zip(outs, procs, strict=True):
        assert re.search(r"pk_live_[0-9A-Za-z]{33}", out), out
        assert f"dashboard: http://127.0.0.1:{port}/dashboard" in err, err
        assert f"http://127.0.0.1:{port}/dashboard" in out  # the first-key text says where to sign in
        m = re.search(r"built-in simulator \(http://127\.0\.0\.1:(\d+)\)", err)
        assert m, err
        sims.append(int(m.group(1)))
        # the order: the first key is printed before "listening", and nothing after it failed
        assert "Traceback" not in err
    assert len(set(sims)) == 2


def test_sim_prints_where_it_listens_and_refuses_a_busy_port() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "sim", "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.fullmatch(r"perilune sim listening on http://127\.0\.0\.1:(\d+) \(OpenAI, Anthropic and Gemini "
                         r"wire formats\)\n", line)
        assert m, line
        port = int(m.group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        busy = subprocess.run([sys.executable, "-m", "perilune", "sim", "--port", str(port)], capture_output=True,
                              text=True, timeout=60)
        assert busy.returncode == 1 and "Traceback" not in busy.stderr
        assert f"port {port} is already in use" in busy.stderr and "the simulator" in busy.stderr
    finally:
        proc.terminate()
        proc.wait(10)
