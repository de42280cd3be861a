"""A TCP proxy the test controls: the network between a gateway and PostgreSQL or Redis, with faults.

The proxy runs its own asyncio loop in a daemon thread, so the test (sync or async) drives it with plain
method calls:

- ``cut()``: every open connection is reset (RST) and new ones are reset on accept until ``heal()``;
  to the gateway this is a service that crashed or a link that dropped.
- ``hold()``: a silent network. Open connections stay open but no byte (and no FIN) is forwarded in
  either direction; new connections are accepted and held the same way.
- ``heal()``: everything flows again, including the bytes that were held.
- ``heal_new_only()``: new connections flow, the connections held so far stay silent for good (what a
  gateway sees when packets were dropped and only a reconnect gets through).
- ``hold_when(pattern)``: arm a hold that starts right after a client sends bytes containing `pattern`
  (e.g. an INSERT of a transaction not yet committed), so that a hold catches work in the middle.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["open", "cut"]
CHUNK = 65536


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0), not FIN: the peer sees 'connection reset by peer'."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    gate: asyncio.Event  # set: bytes flow; cleared: held
    upstream: asyncio.StreamWriter | None = None
    closed: bool = False

    async def wait_open(self) -> None:
        while not self.closed and not self.gate.is_set():
            gate = self.gate
            await gate.wait()

    def reset(self) -> None:
        self.closed = True
        self.gate.set()  # wake the pumps so that they see `closed`
        _reset(self.client)
        _reset(self.upstream)


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0  # reset on accept while cut
    upstream_failures: int = 0
    bytes_forwarded: int = 0
    resets: int = 0
    history: list[str] = field(default_factory=list)


class FaultProxy:
    """``FaultProxy(("127.0.0.1", 6379)).start()``; ``.port`` is where the gateway connects."""

    def __init__(self, target: tuple[str, int], *, name: str = "proxy", host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.target = target
        self.name = name
        self.host = host
        self.port = port
        self.stats = ProxyStats()
        self._mode: Mode = "open"
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{name}", daemon=True)
        self._server: asyncio.Server | None = None
        self._gate: asyncio.Event | None = None
        self._trigger: bytes | None = None

    # ---- lifecycle ----
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- controls (thread-safe, return once applied) ----
    def cut(self) -> None:
        self._call(self._control("cut"))

    def hold(self) -> None:
        self._call(self._control("hold"))

    def hold_when(self, pattern: bytes) -> None:
        """Hold (as `hold()`) as soon as a client->target chunk containing `pattern` was forwarded."""
        self._call(self._arm(pattern))

    @property
    def holding(self) -> bool:
        return self._trigger is None and bool(self.stats.history) and self.stats.history[-1] == "hold"

    def heal(self) -> None:
        self._call(self._control("heal"))

    def heal_new_only(self) -> None:
        self._call(self._control("heal_new_only"))

    @property
    def open_links(self) -> int:
        return len(self._links)

    # ---- inside the proxy's loop ----
    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._gate = asyncio.Event()
        self._gate.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.reset()
        self._links.clear()

    async def _arm(self, pattern: bytes) -> None:
        self._trigger = pattern

    async def _control(self, what: str) -> None:
        assert self._gate is not None
        self._trigger = None  # any control disarms hold_when()
        self.stats.history.append(what)
        if what == "cut":
            self._mode = "cut"
            for link in list(self._links):
                link.reset()
                self.stats.resets += 1
            self._links.clear()
        elif what == "hold":
            held = asyncio.Event()
            self._gate = held
            for link in self._links:
                if link.gate.is_set():
                    link.gate = held
        elif what == "heal":
            self._mode = "open"
            for link in self._links:
                link.gate.set()
            self._gate.set()
        elif what == "heal_new_only":
            self._mode = "open"
            self._gate = asyncio.Event()  # links keep their (cleared) gates: silent for good
            self._gate.set()
        else:  # pragma: no cover - a typo in this file
            raise ValueError(what)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._gate is not None
        if self._mode == "cut":
            self.stats.refused += 1
            _reset(writer)
            return
        self.stats.accepted += 1
        link = _Link(writer, self._gate)
        self._links.add(link)
        try:
            await link.wait_open()  # accepted during a hold: silent until healed
            if link.closed:
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
            except OSError:
                self.stats.upstream_failures += 1
                link.reset()
                return
            if link.closed:  # cut while connecting
                _reset(link.upstream)
                return
            await asyncio.gather(self._pump(reader, link.upstream, link, upstream=True),
                                 self._pump(up_reader, writer, link))
        finally:
            self._links.discard(link)
            if not link.closed:
                link.closed = True
                writer.close()
                if link.upstream is not None:
                    link.upstream.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link, *,
                    upstream: bool = False) -> None:
        try:
            while True:
                data = await src.read(CHUNK)
                await link.wait_open()  # held: neither bytes nor the FIN go through
                if link.closed:
                    return
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                dst.write(data)
                self.stats.bytes_forwarded += len(data)
                if upstream and self._trigger is not None and self._trigger in data:
                    self._trigger = None
                    await self._control("hold")  # the target has the statement; its answer is held
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            link.reset()
