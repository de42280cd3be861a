"""``perilune ledger check [--repair]``: every account's balance recomputed from the ledger and the
usage records, compared with the live counters (Redis), drift printed and, with ``--repair``, fixed.

The live counter of an account should equal its ledger balance (top-ups - charges) minus the money
held by reservations still open. Reservations older than the longest a request may run are leftovers
(a lost reply, an instance that crashed) and are dropped by ``--repair``. Without Redis the counters
live inside the gateway process, which rebuilds them from the ledger when it starts: then the check
reports ledger balances only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
import typer

from perilune.accounting.pricing import usd_str

ledger_app = typer.Typer(no_args_is_help=True, help="Check the money: ledger against live counters.")


@ledger_app.command("check")
def check(
    repair: Annotated[bool, typer.Option("--repair", help="Set drifted counters to the ledger's figure.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per account.")] = False,
    home: Annotated[str | None, typer.Option("--home", envvar="PERILUNE_HOME", help="Data directory.")] = None,
    config: Annotated[str | None, typer.Option("--config", envvar="PERILUNE_CONFIG", help="TOML config file.")]
    = None,
) -> None:
    from perilune.cli import _settings

    settings = _settings(config, home=home)
    rows = asyncio.run(_check(settings, repair))
    drift = [r for r in rows if r["drift_usd"] not in (None, "0")]
    negative = [r for r in rows if r["ledger_usd"].startswith("-")]
    for r in rows:
        if as_json:
            typer.echo(orjson.dumps(r).decode())
        else:
            live = "-" if r["live_usd"] is None else r["live_usd"]
            typer.echo(f"{r['account_id']}  ledger {r['ledger_usd']}  live {live}  reserved {r['reserved_usd']}  "
                       f"drift {r['drift_usd'] or '-'}{'  repaired' if r['repaired'] else ''}")
    if not as_json:
        typer.echo(f"{len(rows)} accounts, {len(drift)} with drift, {len(negative)} with a negative ledger balance"
                   + (" (repaired)" if repair and drift else ""))
    if negative or (drift and not repair):
        raise typer.Exit(1)


async def _check(settings: Any, repair: bool) -> list[dict[str, Any]]:
    from perilune.limits.base import Limiter
    from perilune.limits.memory import MemoryLimiter
    from perilune.limits.redis import RedisLimiter
    from perilune.store.db import Database
    from perilune.store.keys import KeyStore
    from perilune.store.ledger import LedgerStore

    db = Database(settings.db_url, settings.database_timeout_s)
    limiter: Limiter = RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
    max_age = settings.timeouts.total_s + settings.shutdown_grace_s + 60.0
    try:
        db.migrate()
        ledger = LedgerStore(db)
        out = []
        for acct in await asyncio.to_thread(KeyStore(db).list_accounts):
            account_id = str(acct["id"])
            balance, _ = await asyncio.to_thread(ledger.balance_snapshot, account_id)
            live = await limiter.available(account_id) if settings.redis_url else None
            held = await limiter.reserved(account_id, max_age_s=max_age if repair else None) \
                if settings.redis_url else 0
            drift = None if live is None else live - (balance - held)
            repaired = False
            if repair and drift:
                await limiter.set_balance(account_id, balance - held)
                repaired = True
            out.append({"account_id": account_id, "ledger_usd": usd_str(balance),
                        "live_usd": None if live is None else usd_str(live), "reserved_usd": usd_str(held),
                        "drift_usd": None if drift is None else usd_str(drift), "repaired": repaired})
        return out
    finally:
        await limiter.close()
        db.dispose()
