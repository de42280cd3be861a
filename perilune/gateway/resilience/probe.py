"""Reachability probe: a TCP connect to each provider's host every few seconds.

A provider nobody can connect to (refused, unroutable, unknown name) is marked unreachable
in :class:`Health` until a connect succeeds again: its deployments are moved last and shown ``down``
even when no request has gone its way (a hard-down provider listed after healthy ones would otherwise
look "ok" forever). The only I/O of the resilience package; one connect per host per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from perilune.gateway.resilience.health import Health

log = logging.getLogger("perilune.resilience")


def endpoint_of(base_url: str) -> tuple[str, int] | None:
    u = urlsplit(base_url)
    if not u.hostname:
        return None
    return u.hostname, u.port or (443 if u.scheme == "https" else 80)


async def reachable(host: str, port: int, timeout_s: float) -> bool:
    """False only when the connect is refused or cannot be routed (or the name does not resolve): a
    connect that is merely slow (a busy host's full accept queue) says nothing and counts as reachable;
    requests that time out are the breaker's business."""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return True
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class ReachabilityProbe:
    def __init__(self, health: Health, providers: Iterable[tuple[str, str]], *, interval_s: float,
                 timeout_s: float) -> None:
        """``providers``: (name, base_url) pairs."""
        self.health = health
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.targets: dict[tuple[str, int], list[str]] = {}
        for name, url in providers:
            ep = endpoint_of(url)
            if ep is not None:
                self.targets.setdefault(ep, []).append(name)
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> None:
        eps = list(self.targets)
        results = await asyncio.gather(*(reachable(h, p, self.timeout_s) for h, p in eps))
        for ep, ok in zip(eps, results, strict=True):
            for name in self.targets[ep]:
                was = self.health.reachable(name)
                self.health.set_reachable(name, ok)
                if was != ok:
                    log.warning("provider %s is %s (%s:%d)", name, "reachable again" if ok else "unreachable", *ep)

    async def start(self) -> None:
        if self.interval_s > 0 and self.targets:
            self._task = asyncio.create_task(self._loop(), name="perilune-reachability")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)
