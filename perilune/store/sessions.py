"""Dashboard sessions, server-side. The browser holds a random id; only its SHA-256 is stored, beside
the SHA-256 of the key that signed in and an expiry. Deleting the row ends the session everywhere."""

from __future__ import annotations

import hashlib
import secrets
import time

import sqlalchemy as sa

from perilune.store.db import Database
from perilune.store.tables import dashboard_sessions


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, key_hash: str, ttl_s: float) -> str:
        """A new session for the key with this hash; returns the session id (shown to the browser once)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        t = dashboard_sessions
        with self.db.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.expires_at <= now))  # housekeeping: expired sessions
            conn.execute(sa.insert(t).values(id_hash=session_hash(session_id), key_hash=key_hash,
                                             created_at=now, expires_at=now + ttl_s))
        return session_id

    def key_hash_of(self, session_id: str) -> str | None:
        """The hash of the key behind a live session, or None (unknown, expired or ended)."""
        t = dashboard_sessions
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.key_hash).where(t.c.id_hash == session_hash(session_id),
                                                             t.c.expires_at > time.time())).first()
        return str(row.key_hash) if row else None

    def delete(self, session_id: str) -> bool:
        t = dashboard_sessions
        with self.db.engine.begin() as conn:
            return conn.execute(sa.delete(t).where(t.c.id_hash == session_hash(session_id))).rowcount > 0
