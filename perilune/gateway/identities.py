"""Which account a verified JWT identity may act for, decided only by the operator.

In order: an explicit link of (issuer, subject) to an account (``identities`` table: admin API or
``perilune identities link``); else ``[jwt] account_map`` (the value of ``account_claim`` -> an
account id, written by the operator in the config); else, when ``[jwt] auto_accounts = true``, an
account of the identity's own (id ``jwt_`` + a hash of issuer and subject, created on first sight, so
it can never be an API-key account). Otherwise the token is refused (403 ``identity_not_linked``).
The token's claims never name an account directly.

Links are cached in memory and refreshed in the background like keys (changes reach every instance
within ``refresh_s``); an identity not in the cache is looked up once, then remembered briefly.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perilune.errors import PermissionDenied
from perilune.store.identities import IdentityRecord, IdentityStore

if TYPE_CHECKING:
    from perilune.settings import Settings
    from perilune.store.keys import KeyStore

log = logging.getLogger("perilune.auth.identities")

AUTO_PREFIX = "jwt_"
NEGATIVE_TTL_S = 1.0
NEGATIVE_MAX = 10_000

AccountExists = Callable[[str], bool]
EnsureAccount = Callable[[str, str], object]


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified JWT principal: its issuer (``iss``, "" when absent) and subject (``sub``)."""

    issuer: str
    subject: str
    mapped_account: str | None = None  # from [jwt] account_map, when the token's claim is listed

    @property
    def key(self) -> tuple[str, str]:
        return self.issuer, self.subject


def auto_account_id(issuer: str, subject: str) -> str:
    digest = hashlib.sha256(issuer.encode() + b"\x00" + subject.encode()).hexdigest()[:32]
    return AUTO_PREFIX + digest


class IdentityLinks:
    def __init__(self, store: IdentityStore, *, account_exists: AccountExists, ensure_account: EnsureAccount,
                 auto_accounts: bool = False, refresh_s: float = 0.5) -> None:
        self.store = store
        self.account_exists = account_exists
        self.ensure_account = ensure_account
        self.auto_accounts = auto_accounts
        self.refresh_s = refresh_s
        self._links: dict[tuple[str, str], IdentityRecord] = {}
        self._missing: dict[tuple[str, str], float] = {}
        self._known_accounts: set[str] = set()
        self._since = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="perilune-identity-refresh")

    async def stop(self) -> None:
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
                    log.warning("identity refresh failed (%s); serving from the cache", e.__class__.__name__)
                failing = True
            else:
                failing = False

    async def refresh(self) -> None:
        started = time.time()
        since = self._since - 5.0 if self._since else 0.0
        for rec in await asyncio.to_thread(self.store.changed_since, since):
            self._apply(rec)
        self._since = started

    def _apply(self, rec: IdentityRecord) -> None:
        key = (rec.issuer, rec.subject)
        if rec.linked:
            self._links[key] = rec
            self._missing.pop(key, None)
        else:
            self._links.pop(key, None)

    async def account_for(self, ident: Identity) -> str:
        """The account ``ident`` acts for; PermissionDenied when the operator linked it to none."""
        rec = self._links.get(ident.key)
        if rec is None:
            rec = await self._lookup(ident.key)
        if rec is not None:
            return rec.account_id
        if ident.mapped_account is not None:
            if not await self._exists(ident.mapped_account):
                raise PermissionDenied(f"jwt.account_map maps this token to account '{ident.mapped_account}', "
                                       "which does not exist.", code="identity_not_linked")
            return ident.mapped_account
        if self.auto_accounts:
            account_id = auto_account_id(*ident.key)
            if account_id not in self._known_accounts:
                await asyncio.to_thread(self.ensure_account, account_id, ident.subject[:200])
                self._known_accounts.add(account_id)
            return account_id
        raise PermissionDenied("This token's identity (issuer and subject) is not linked to an account. An "
                               "operator links it with `perilune identities link` or POST /admin/identities.",
                               code="identity_not_linked")

    async def _exists(self, account_id: str) -> bool:
        if account_id in self._known_accounts:
            return True
        if await asyncio.to_thread(self.account_exists, account_id):
            self._known_accounts.add(account_id)
            return True
        return False

    async def _lookup(self, key: tuple[str, str]) -> IdentityRecord | None:
        now = time.monotonic()
        until = self._missing.get(key)
        if until is not None and until > now:
            return None
        rec = await asyncio.to_thread(self.store.find, *key)
        if rec is not None and rec.linked:
            self._links[key] = rec
            return rec
        if len(self._missing) >= NEGATIVE_MAX:
            self._missing.clear()
        self._missing[key] = now + NEGATIVE_TTL_S
        return None


def identity_links(settings: Settings, key_store: KeyStore) -> IdentityLinks:
    """The resolver for ``[jwt]``, over the same database as the keys."""
    cfg = settings.jwt
    return IdentityLinks(IdentityStore(key_store.db),
                         account_exists=lambda a: key_store.get_account(a) is not None,
                         ensure_account=key_store.ensure_account,
                         auto_accounts=bool(cfg and cfg.auto_accounts), refresh_s=settings.key_refresh_s)
