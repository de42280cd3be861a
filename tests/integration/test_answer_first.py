"""A complete answer leaves before its request settles and records: the client has its body while the
settlement is still running, and the settlement and the record still happen, once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from perilune.app import SERVICES, build_app
from perilune.settings import load_settings
from perilune.store.db import Database
from tests.conftest import default_config, first_key


async def test_the_client_has_its_answer_while_the_request_settles(tmp_path: Path, sim_url: str) -> None:
    cfg = tmp_path / "perilune.toml"
    cfg.write_text(default_config(sim_url))
    env = {"PERILUNE_ROUTER__EMBEDDER": "hashing", "PERILUNE_ROUTER__ENABLED": "false"}
    key, _ = first_key(tmp_path, cfg, env, "10")
    settings = load_settings(cfg, environ=env, overrides={"home": str(tmp_path)})
    app = build_app(settings, sim_url=sim_url)
    gate, settling = asyncio.Event(), asyncio.Event()
    settled: list[Any] = []

    async with TestServer(app) as server:
        billing = app[SERVICES].billing
        real = billing.settle

        async def slow_settle(res: Any, usage: Any, charge: Any) -> None:
            settling.set()
            await gate.wait()
            settled.append(charge)
            await real(res, usage, charge)

        billing.settle = slow_settle  # type: ignore[method-assign]
        async with aiohttp.ClientSession() as http:
            async def ask() -> tuple[int, Any, bool, bool]:
                async with http.post(server.make_url("/v1/chat/completions"),
                                     headers={"Authorization": f"Bearer {key}"},
                                     json={"model": "sim-gpt", "messages": [{"role": "user", "content": "hi"}]}
                                     ) as r:
                    return r.status, await r.json(), settling.is_set(), bool(settled)

            try:  # the answer arrives although the settlement waits (without it: a timeout here)
                status, body, was_settling, had_settled = await asyncio.wait_for(ask(), 5)
            finally:
                gate.set()
            assert status == 200 and body["choices"][0]["message"]["content"]
            assert was_settling and not had_settled
            for _ in range(100):
                if settled:
                    break
                await asyncio.sleep(0.02)
        assert len(settled) == 1 and settled[0].charged_pusd > 0
    db = Database(settings.db_url)  # the server's shutdown drained its usage writer
    try:
        with db.engine.connect() as c:
            rows = c.execute(sa.text("SELECT status, charged_pusd FROM usage_records")).all()
    finally:
        db.dispose()
    assert [(status, charged) for status, charged in rows] == [(200, settled[0].charged_pusd)]
