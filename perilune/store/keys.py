"""Accounts and API keys. A key is shown once, at creation; only its SHA-256 is stored.

Keys carry 192 bits of randomness, so a plain (unsalted) SHA-256 is a sound verifier and lets any
instance find a key by its hash in one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from perilune.store.db import Database
from perilune.store.tables import accounts, api_keys

KEY_PREFIX = "pk_live_"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out)).rjust(33, "0")


def new_key_secret() -> str:
    return KEY_PREFIX + _base62(secrets.token_bytes(24))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    account_id: str
    name: str
    prefix: str
    role: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    updated_at: float
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "account_id": self.account_id, "name": self.name, "prefix": self.prefix,
                "role": self.role, "created_at": self.created_at, "expires_at": self.expires_at,
                "revoked_at": self.revoked_at, "rpm_limit": self.rpm_limit, "tpm_limit": self.tpm_limit}


def _plain(row: Any) -> dict[str, Any]:
    """A row as a dict with plain ``str`` keys (SQLAlchemy's quoted_name is a str subclass)."""
    return {str(k): v for k, v in row._mapping.items()}


def _record(row: Any) -> KeyRecord:
    return KeyRecord(id=row.id, account_id=row.account_id, name=row.name, prefix=row.prefix, role=row.role,
                     created_at=row.created_at, expires_at=row.expires_at, revoked_at=row.revoked_at,
                     updated_at=row.updated_at, rpm_limit=row.rpm_limit, tpm_limit=row.tpm_limit)


_KEY_COLS = (api_keys.c.id, api_keys.c.account_id, api_keys.c.name, api_keys.c.prefix, api_keys.c.role,
             api_keys.c.created_at, api_keys.c.expires_at, api_keys.c.revoked_at, api_keys.c.updated_at,
             api_keys.c.key_hash, api_keys.c.rpm_limit, api_keys.c.tpm_limit)


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- accounts ----
    def create_account(self, name: str) -> str:
        account_id = new_id("acct")
        with self.db.engine.begin() as conn:
            conn.execute(sa.insert(accounts).values(id=account_id, name=name, created_at=time.time()))
        return account_id

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
        return _plain(row) if row else None

    def list_accounts(self) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            return [_plain(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.created_at))]

    def default_account(self) -> str:
        """The oldest account, created ("default") when there is none."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(accounts.c.id).order_by(accounts.c.created_at).limit(1)).first()
        return row.id if row else self.create_account("default")

    def ensure_account(self, account_id: str, name: str) -> bool:
        """Create the account ``account_id`` unless it exists; True when this call created it.

        Idempotent and safe under concurrency: a racing insert from another process loses on the
        primary key and is ignored."""
        if self.get_account(account_id) is not None:
            return False
        try:
            with self.db.engine.begin() as conn:
                conn.execute(sa.insert(accounts).values(id=account_id, name=name, created_at=time.time()))
        except sa.exc.IntegrityError:
            if self.get_account(account_id) is None:
                raise
            return False
        return True

    # ---- keys ----
    def create_key(self, account_id: str, *, name: str = "", role: str = "user",
                   expires_at: float | None = None) -> tuple[str, KeyRecord]:
        if role not in ("user", "admin"):
            raise ValueError(f"role must be 'user' or 'admin', got {role!r}")
        if self.get_account(account_id) is None:
            raise LookupError(f"no account {account_id!r}")
        secret = new_key_secret()
        now = time.time()
        rec = KeyRecord(id=new_id("key"), account_id=account_id, name=name, prefix=secret[:12] + "...",
                        role=role, created_at=now, expires_at=expires_at, revoked_at=None, updated_at=now)
        with self.db.engine.begin() as conn:
            conn.execute(sa.insert(api_keys).values(key_hash=hash_key(secret), **_values(rec)))
        return secret, rec

    def list_keys(self, account_id: str | None = None) -> list[KeyRecord]:
        q = sa.select(*_KEY_COLS).order_by(api_keys.c.created_at)
        if account_id:
            q = q.where(api_keys.c.account_id == account_id)
        with self.db.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]

    def get_key(self, key_id: str) -> KeyRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(*_KEY_COLS).where(api_keys.c.id == key_id)).first()
        return _record(row) if row else None

    def revoke_key(self, key_id: str) -> KeyRecord | None:
        now = time.time()
        with self.db.engine.begin() as conn:
            conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=now, updated_at=now))
        return self.get_key(key_id)

    def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(*_KEY_COLS).where(api_keys.c.key_hash == key_hash)).first()
        return _record(row) if row else None

    def changed_since(self, since: float) -> list[tuple[str, KeyRecord]]:
        """(hash, record) of keys created or changed at or after ``since``."""
        q = sa.select(*_KEY_COLS).where(api_keys.c.updated_at >= since)
        with self.db.engine.connect() as conn:
            return [(r.key_hash, _record(r)) for r in conn.execute(q)]

    def count_keys(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one())


def _values(rec: KeyRecord) -> dict[str, Any]:
    return {"id": rec.id, "account_id": rec.account_id, "name": rec.name, "prefix": rec.prefix,
            "role": rec.role, "created_at": rec.created_at, "expires_at": rec.expires_at,
            "revoked_at": rec.revoked_at, "updated_at": rec.updated_at}
