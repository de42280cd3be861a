"""The money ledger and account settings in the database.

Balance of an account = sum(ledger_entries.amount_pusd) - sum(usage_records.charged_pusd). Ledger
entries are append-only; a mistake is corrected by a new ``adjustment`` entry, never an update.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from perilune.store.db import Database
from perilune.store.tables import accounts, api_keys, ledger_entries, usage_records

KINDS = ("topup", "refund", "adjustment")
RECENT_S = 300.0  # ledger entries newer than this are listed with a balance snapshot
RECENT_CHARGES_S = 600.0  # charges of requests started this recently are listed too (as "c:<id>")


@dataclass(frozen=True, slots=True)
class AccountSettings:
    id: str
    rpm_limit: int | None
    tpm_limit: int | None
    alert_thresholds: tuple[int, ...]  # pico-USD, descending
    alert_webhook_url: str | None
    updated_at: float


def _settings(row: Any) -> AccountSettings:
    thresholds = tuple(sorted((int(t) for t in json.loads(row.alert_thresholds or "[]")), reverse=True))
    return AccountSettings(row.id, row.rpm_limit, row.tpm_limit, thresholds, row.alert_webhook_url,
                           row.updated_at)


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_entry(self, account_id: str, kind: str, amount_pusd: int, actor: str, reason: str = "") -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        entry = {"id": "le_" + secrets.token_hex(10), "account_id": account_id, "created_at": time.time(),
                 "kind": kind, "amount_pusd": amount_pusd, "actor": actor, "reason": reason}
        with self.db.engine.begin() as conn:
            if conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
                raise LookupError(f"no account {account_id!r}")
            conn.execute(sa.insert(ledger_entries).values(**entry))
        return entry

    def balance_snapshot(self, account_id: str) -> tuple[int, list[str]]:
        """(balance in pico-USD, ids of the recent ledger entries and charges it includes), from one
        snapshot; a charge is listed as ``c:<request id>``."""
        since = time.time() - RECENT_S
        with self.db.engine.connect() as conn:
            if not self.db.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                credits = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(ledger_entries.c.amount_pusd), 0))
                                       .where(ledger_entries.c.account_id == account_id)).scalar_one()
                charges = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(usage_records.c.charged_pusd), 0))
                                       .where(usage_records.c.account_id == account_id)).scalar_one()
                recent = [r.id for r in conn.execute(
                    sa.select(ledger_entries.c.id).where(ledger_entries.c.account_id == account_id,
                                                         ledger_entries.c.created_at >= since))]
                recent += ["c:" + r.id for r in conn.execute(
                    sa.select(usage_records.c.id).where(
                        usage_records.c.account_id == account_id, usage_records.c.charged_pusd > 0,
                        usage_records.c.created_at >= time.time() - RECENT_CHARGES_S))]
        return int(credits) - int(charges), recent

    def entries_since(self, since: float) -> list[tuple[str, str, int]]:
        q = sa.select(ledger_entries.c.id, ledger_entries.c.account_id, ledger_entries.c.amount_pusd).where(
            ledger_entries.c.created_at >= since).order_by(ledger_entries.c.created_at)
        with self.db.engine.connect() as conn:
            return [(r.id, r.account_id, int(r.amount_pusd)) for r in conn.execute(q)]

    def history(self, account_id: str, limit: int = 100,
                before: tuple[float, str] | None = None) -> list[dict[str, Any]]:
        """Newest first: ledger entries and per-request charges together; ``before`` = (created_at, id)
        of the last row of the previous page continues from there (every entry is reachable)."""
        le = sa.select(ledger_entries.c.id, ledger_entries.c.created_at, ledger_entries.c.kind,
                       ledger_entries.c.amount_pusd, ledger_entries.c.actor, ledger_entries.c.reason).where(
            ledger_entries.c.account_id == account_id)
        ch = sa.select(usage_records.c.id, usage_records.c.created_at, sa.literal("charge").label("kind"),
                       (-usage_records.c.charged_pusd).label("amount_pusd"),
                       sa.func.coalesce(usage_records.c.key_id, "").label("actor"),
                       usage_records.c.model_served.label("reason")).where(
            usage_records.c.account_id == account_id, usage_records.c.charged_pusd > 0)
        u = sa.union_all(le, ch).subquery()
        q = sa.select(u).order_by(u.c.created_at.desc(), u.c.id.desc()).limit(limit)
        if before is not None:
            at, rid = before
            q = q.where(sa.or_(u.c.created_at < at, sa.and_(u.c.created_at == at, u.c.id < rid)))
        with self.db.engine.connect() as conn:
            return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]

    def spend_since(self, account_id: str, since: float) -> int:
        q = sa.select(sa.func.coalesce(sa.func.sum(usage_records.c.charged_pusd), 0)).where(
            usage_records.c.account_id == account_id, usage_records.c.created_at >= since)
        with self.db.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def account_settings(self, since: float = 0.0) -> list[AccountSettings]:
        q = sa.select(accounts.c.id, accounts.c.rpm_limit, accounts.c.tpm_limit, accounts.c.alert_thresholds,
                      accounts.c.alert_webhook_url, accounts.c.updated_at).where(accounts.c.updated_at >= since)
        with self.db.engine.connect() as conn:
            return [_settings(r) for r in conn.execute(q)]

    def set_account_limits(self, account_id: str, rpm: int | None, tpm: int | None) -> bool:
        return self._update(accounts, accounts.c.id == account_id, rpm_limit=rpm, tpm_limit=tpm)

    def set_key_limits(self, key_id: str, rpm: int | None, tpm: int | None) -> bool:
        return self._update(api_keys, api_keys.c.id == key_id, rpm_limit=rpm, tpm_limit=tpm)

    def change_limits(self, target: str, target_id: str, changes: dict[str, int | None]) -> bool:
        """Change only the given limits (``rpm``, ``tpm``; None = unlimited) of a ``key`` or an
        ``account``; the others stay as they are. False when there is no such key or account."""
        table = api_keys if target == "key" else accounts
        values = {f"{name}_limit": v for name, v in changes.items() if name in ("rpm", "tpm")}
        if not values:
            with self.db.engine.connect() as conn:
                return conn.execute(sa.select(table.c.id).where(table.c.id == target_id)).first() is not None
        return self._update(table, table.c.id == target_id, **values)

    def set_alerts(self, account_id: str, thresholds_pusd: list[int], webhook_url: str | None) -> bool:
        return self._update(accounts, accounts.c.id == account_id,
                            alert_thresholds=json.dumps(sorted(set(thresholds_pusd), reverse=True)),
                            alert_webhook_url=webhook_url)

    def _update(self, table: sa.Table, where: Any, **values: Any) -> bool:
        with self.db.engine.begin() as conn:
            r = conn.execute(sa.update(table).where(where).values(updated_at=time.time(), **values))
        return bool(r.rowcount)
