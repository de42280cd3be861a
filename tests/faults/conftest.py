"""Fixtures of the fault suite: a calm cluster shared by the scenarios that inject no network fault, and
a factory for a cluster of a test's own (fresh database, emptied Redis database, its own proxies)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.cluster import Cluster, cluster, settings_field

MakeCluster = Callable[..., Cluster]

for _name in ("httpx", "httpx2", "alembic", "perilune"):  # one line per request drowns the suite's progress
    logging.getLogger(_name).setLevel(logging.WARNING)

GRACE_FIELD = settings_field("shutdown_grace_s")
# With a grace setting the suite sets it short; without, today's hard-coded aiohttp shutdown timeout.
GRACE_S = 5.0 if GRACE_FIELD else 10.0


def grace_config() -> str:
    return f"{GRACE_FIELD} = {GRACE_S}\n" if GRACE_FIELD else ""


@pytest.fixture(scope="module")  # gone before the next module's clusters empty the Redis database
def calm(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(sim_url, tmp_path_factory.mktemp("calm")) as c:
        yield c


@pytest.fixture
def make_cluster(sim_url: str, tmp_path: Path) -> Iterator[MakeCluster]:
    with ExitStack() as stack:
        def make(top: str = "", tables: str = "", nodes: int = 2) -> Cluster:
            return stack.enter_context(cluster(sim_url, tmp_path, top=top, tables=tables, nodes=nodes))

        yield make
