"""Authentication: API key -> :class:`Principal`, verified from an in-memory cache.

The cache is filled on first sight of a key (one indexed lookup, off the event loop) and kept fresh
by a background task that reads the keys changed since its last look every ``key_refresh_s``, so a
revocation made by any instance takes effect here within about a second. Unknown keys are remembered
briefly so a flood of bad keys cannot turn into a flood of database reads.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from perilune.errors import AuthenticationFailed, PermissionDenied
from perilune.gateway.identities import IdentityLinks
from perilune.gateway.jwt import JWTVerifier, looks_like_jwt
from perilune.limits.base import NO_LIMITS, Limits
from perilune.store.keys import KeyRecord, KeyStore, hash_key

log = logging.getLogger("perilune.auth")

NEGATIVE_TTL_S = 1.0
NEGATIVE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None
    account_id: str | None
    role: str
    limits: Limits = NO_LIMITS  # the key's own rate limits

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ENV_ADMIN = Principal(key_id=None, account_id=None, role="admin")


def credential(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


class KeyCache:
    def __init__(self, store: KeyStore, *, admin_key: str | None = None, refresh_s: float = 0.5,
                 jwt: JWTVerifier | None = None, identities: IdentityLinks | None = None) -> None:
        self.store = store
        self.jwt = jwt  # bearer JWTs, when [jwt] is configured
        self.identities = identities  # which account a JWT identity acts for (with jwt)
        self.refresh_s = refresh_s
        self._admin_hash = hash_key(admin_key) if admin_key else None
        self._keys: dict[str, KeyRecord] = {}
        self._missing: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._since = 0.0
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----
    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="perilune-key-refresh")
        if self.jwt is not None:
            await self.jwt.start()
        if self.identities is not None:
            await self.identities.start()

    async def stop(self) -> None:
        if self.identities is not None:
            await self.identities.stop()
        if self.jwt is not None:
            await self.jwt.stop()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception as e:  # the database may be briefly away; keep serving from the cache
                if not failing:
                    log.warning("key refresh failed (%s); serving from the cache until it works",
                                e.__class__.__name__)
                failing = True
            else:
                failing = False

    async def refresh(self) -> None:
        started = time.time()
        # Overlap the window by a few seconds: commits from other instances can land out of order.
        changed = await asyncio.to_thread(self.store.changed_since, self._since - 5.0 if self._since else 0.0)
        for h, rec in changed:
            self._keys[h] = rec
            self._missing.pop(h, None)
        self._since = started

    # ---- verification ----
    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        secret = credential(headers)
        if not secret:
            raise AuthenticationFailed(
                "Missing API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                code="missing_api_key")
        if self.jwt is not None and self.identities is not None and looks_like_jwt(secret):
            ident = await self.jwt.identity_for(secret)
            return Principal(key_id=None, account_id=await self.identities.account_for(ident), role="user")
        return await self.authenticate_hash(hash_key(secret))

    async def authenticate_hash(self, h: str) -> Principal:
        """The principal of the API key (or admin key) whose SHA-256 is ``h``."""
        if self._admin_hash is not None and hmac.compare_digest(h, self._admin_hash):
            return ENV_ADMIN
        rec = self._keys.get(h)
        if rec is None:
            rec = await self._lookup(h)
        if rec is None:
            raise AuthenticationFailed("Invalid API key.")
        now = time.time()
        if rec.revoked_at is not None:
            raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
        if rec.expires_at is not None and rec.expires_at <= now:
            raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
        return Principal(key_id=rec.id, account_id=rec.account_id, role=rec.role,
                         limits=Limits(rec.rpm_limit, rec.tpm_limit))

    async def authenticate_admin(self, headers: Mapping[str, str]) -> Principal:
        p = await self.authenticate(headers)
        if not p.is_admin:
            raise PermissionDenied("This endpoint needs an admin key.")
        return p

    async def _lookup(self, h: str) -> KeyRecord | None:
        now = time.monotonic()
        until = self._missing.get(h)
        if until is not None and until > now:
            return None
        fut = self._inflight.get(h)
        if fut is not None:
            return await fut
        fut = asyncio.get_running_loop().create_future()
        self._inflight[h] = fut
        try:
            rec = await asyncio.to_thread(self.store.find_by_hash, h)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved
            raise
        else:
            fut.set_result(rec)
        finally:
            del self._inflight[h]
        if rec is None:
            if len(self._missing) >= NEGATIVE_MAX:
                self._missing.clear()
            self._missing[h] = now + NEGATIVE_TTL_S
        else:
            self._keys[h] = rec
        return rec
