"""The fault proxy itself: bytes flow, cut resets, hold stalls (old and new connections), heal resumes."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.proxy import FaultProxy
from tests.services import REDIS_URL, require

pytestmark = [pytest.mark.faults, pytest.mark.timeout(30)]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = FaultProxy(("127.0.0.1", server.server_address[1]), name="echo").start()
    try:
        yield proxy
    finally:
        proxy.stop()
        server.shutdown()
        server.server_close()


def connect(proxy: FaultProxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    s.settimeout(2)
    return s


def echo(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def wait_accepted(proxy: FaultProxy, n: int) -> None:
    deadline = time.monotonic() + 2
    while proxy.stats.accepted < n:
        assert time.monotonic() < deadline, f"the proxy accepted {proxy.stats.accepted} connections, not {n}"
        time.sleep(0.01)


def silent(s: socket.socket, wait_s: float = 0.4) -> bool:
    s.settimeout(wait_s)
    try:
        s.recv(1)  # anything (bytes or EOF) means the connection is not silent
        return False
    except TimeoutError:
        return True
    finally:
        s.settimeout(2)


def reset_or_closed(s: socket.socket) -> bool:
    try:
        s.sendall(b"x")
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_bytes_flow_both_ways(echo_proxy: FaultProxy) -> None:
    with connect(echo_proxy) as s:
        payload = bytes(range(256)) * 1000
        assert echo(s, payload) == payload
    deadline = time.monotonic() + 2  # the proxy's thread counts just after it forwards
    while echo_proxy.stats.bytes_forwarded < 2 * len(payload) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert echo_proxy.stats.bytes_forwarded == 2 * len(payload)


def test_cut_resets_open_connections_and_refuses_new_ones_until_healed(echo_proxy: FaultProxy) -> None:
    s = connect(echo_proxy)
    assert echo(s, b"ping") == b"ping"
    echo_proxy.cut()
    assert reset_or_closed(s)
    s.close()
    try:  # the handshake completes (kernel), then the proxy resets it (maybe before connect() returns)
        with connect(echo_proxy) as s2:
            assert reset_or_closed(s2)
    except ConnectionResetError:
        pass
    echo_proxy.heal()
    with connect(echo_proxy) as s3:
        assert echo(s3, b"back") == b"back"
    assert echo_proxy.stats.resets == 1 and echo_proxy.stats.refused >= 1


def test_hold_stalls_old_and_new_connections_and_heal_delivers_what_was_held(echo_proxy: FaultProxy) -> None:
    old = connect(echo_proxy)
    assert echo(old, b"before") == b"before"
    echo_proxy.hold()
    old.sendall(b"held-old")
    assert silent(old)
    new = connect(echo_proxy)  # accepted, but silent too
    new.sendall(b"held-new")
    assert silent(new)
    echo_proxy.heal()
    assert old.recv(100) == b"held-old"
    assert new.recv(100) == b"held-new"
    old.close()
    new.close()


def test_heal_new_only_leaves_held_connections_silent(echo_proxy: FaultProxy) -> None:
    old = connect(echo_proxy)
    assert echo(old, b"a") == b"a"
    echo_proxy.hold()
    during = connect(echo_proxy)
    wait_accepted(echo_proxy, 2)  # the proxy took it while holding
    echo_proxy.heal_new_only()
    old.sendall(b"lost")
    during.sendall(b"lost too")
    with connect(echo_proxy) as fresh:
        assert echo(fresh, b"fresh") == b"fresh"
    assert silent(old) and silent(during)
    echo_proxy.heal()  # a full heal releases them
    assert old.recv(100) == b"lost"
    old.close()
    during.close()


def test_hold_when_starts_the_hold_right_after_the_pattern_went_through(echo_proxy: FaultProxy) -> None:
    s = connect(echo_proxy)
    echo_proxy.hold_when(b"COMMIT-ME")
    assert echo(s, b"before") == b"before" and not echo_proxy.holding
    s.sendall(b"INSERT ... COMMIT-ME")  # reaches the target; its answer is held
    assert silent(s) and echo_proxy.holding
    echo_proxy.heal()
    assert s.recv(100) == b"INSERT ... COMMIT-ME"
    s.close()


@pytest.mark.redis
def test_redis_through_the_proxy() -> None:
    require("Redis", "127.0.0.1", 6379)
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    db = int(REDIS_URL.rsplit("/", 1)[1] or 0)
    with FaultProxy(("127.0.0.1", 6379), name="redis") as proxy:
        r = redis.Redis(host="127.0.0.1", port=proxy.port, db=db, socket_timeout=0.5, socket_connect_timeout=0.5,
                        retry=Retry(NoBackoff(), 0))
        assert r.ping()
        proxy.cut()
        with pytest.raises(redis.ConnectionError):
            r.ping()
        proxy.heal()
        assert r.ping()
        proxy.hold()
        started = time.monotonic()
        with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
            r.ping()
        assert time.monotonic() - started >= 0.4
        proxy.heal()
        r.connection_pool.disconnect()
        assert r.ping()
        r.close()
