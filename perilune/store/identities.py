"""JWT identities: an operator's explicit link from (issuer, subject) to an account.

A JWT principal lives in its own namespace: the token's ``iss`` and ``sub`` claims, never an account
id. Only a link made here (admin API or ``perilune identities link``) or a mapping in ``[jwt]``
lets a token act for an account. Unlinking marks the row, so caches on every instance see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from perilune.store.db import Database
from perilune.store.keys import new_id
from perilune.store.tables import accounts, identities

MAX_ISSUER = 500
MAX_SUBJECT = 255


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    id: str
    issuer: str
    subject: str
    account_id: str
    actor: str
    created_at: float
    updated_at: float
    unlinked_at: float | None

    @property
    def linked(self) -> bool:
        return self.unlinked_at is None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "identity", "issuer": self.issuer, "subject": self.subject,
                "account_id": self.account_id, "actor": self.actor, "created_at": self.created_at,
                "updated_at": self.updated_at, "unlinked_at": self.unlinked_at}


def _record(row: Any) -> IdentityRecord:
    return IdentityRecord(id=row.id, issuer=row.issuer, subject=row.subject, account_id=row.account_id,
                          actor=row.actor, created_at=row.created_at, updated_at=row.updated_at,
                          unlinked_at=row.unlinked_at)


def check_identity(issuer: str, subject: str) -> None:
    """ValueError (naming the field) for an issuer or subject that cannot be stored."""
    for name, value, limit, min_len in (("issuer", issuer, MAX_ISSUER, 0), ("subject", subject, MAX_SUBJECT, 1)):
        if not isinstance(value, str) or not min_len <= len(value) <= limit or not value.isprintable():
            raise ValueError(f"{name} must be printable text of {min_len} to {limit} characters")


class IdentityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def link(self, issuer: str, subject: str, account_id: str, actor: str = "") -> IdentityRecord:
        """Link (or re-link) an identity to an account. LookupError when the account does not exist."""
        check_identity(issuer, subject)
        now = time.time()
        t = identities
        with self.db.engine.begin() as conn:
            if conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
                raise LookupError(f"no account {account_id!r}")
            row = conn.execute(sa.select(t).where(t.c.issuer == issuer, t.c.subject == subject)).first()
            if row is None:
                ident_id = new_id("idn")
                conn.execute(sa.insert(t).values(id=ident_id, issuer=issuer, subject=subject,
                                                 account_id=account_id, actor=actor[:200], created_at=now,
                                                 updated_at=now, unlinked_at=None))
            else:
                ident_id = row.id
                conn.execute(sa.update(t).where(t.c.id == ident_id).values(
                    account_id=account_id, actor=actor[:200], updated_at=now, unlinked_at=None))
            return _record(conn.execute(sa.select(t).where(t.c.id == ident_id)).one())

    def unlink(self, identity_id: str) -> IdentityRecord | None:
        now = time.time()
        t = identities
        with self.db.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.id == identity_id, t.c.unlinked_at.is_(None))
                         .values(unlinked_at=now, updated_at=now))
            row = conn.execute(sa.select(t).where(t.c.id == identity_id)).first()
        return _record(row) if row else None

    def find(self, issuer: str, subject: str) -> IdentityRecord | None:
        t = identities
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.issuer == issuer, t.c.subject == subject)).first()
        return _record(row) if row else None

    def list_links(self, account_id: str | None = None, *, include_unlinked: bool = False
                   ) -> list[IdentityRecord]:
        t = identities
        q = sa.select(t).order_by(t.c.created_at)
        if account_id:
            q = q.where(t.c.account_id == account_id)
        if not include_unlinked:
            q = q.where(t.c.unlinked_at.is_(None))
        with self.db.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]

    def changed_since(self, since: float) -> list[IdentityRecord]:
        t = identities
        with self.db.engine.connect() as conn:
            return [_record(r) for r in conn.execute(sa.select(t).where(t.c.updated_at >= since))]
