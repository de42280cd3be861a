"""JWT identities -> accounts: only an operator's link, config mapping or (opt-in) an account of the
identity's own; a token naming an API-key account in its claims gets nothing. SQLite in a temp dir."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from perilune.errors import PermissionDenied
from perilune.gateway.auth import KeyCache
from perilune.gateway.identities import AUTO_PREFIX, Identity, IdentityLinks, auto_account_id
from perilune.gateway.jwt import JWTVerifier
from perilune.settings import Jwt
from perilune.store.db import Database
from perilune.store.identities import IdentityStore
from perilune.store.keys import KeyStore

SECRET = "an-hs256-secret-of-at-least-thirty-two-bytes!"
ISS = "https://idp.example"


@pytest.fixture
def stores(tmp_path: Path) -> tuple[KeyStore, IdentityStore]:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    yield KeyStore(db), IdentityStore(db)
    db.dispose()


def links(keys: KeyStore, idents: IdentityStore, *, auto: bool = False) -> IdentityLinks:
    return IdentityLinks(idents, account_exists=lambda a: keys.get_account(a) is not None,
                         ensure_account=keys.ensure_account, auto_accounts=auto, refresh_s=60)


def token(**claims: object) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISS, "iat": now, "exp": now + 600, **claims}, SECRET, algorithm="HS256")


async def test_subject_equal_to_an_account_id_gets_nothing(stores: tuple[KeyStore, IdentityStore]) -> None:
    keys, idents = stores
    victim = keys.create_account("victim")
    cache = KeyCache(keys, jwt=JWTVerifier(Jwt(hs256_secret_env="S", issuer=ISS), secret=SECRET.encode()),
                     identities=links(keys, idents))
    with pytest.raises(PermissionDenied) as info:
        await cache.authenticate({"Authorization": f"Bearer {token(sub=victim)}"})
    assert info.value.status_code == 403 and info.value.code == "identity_not_linked"
    assert victim not in info.value.message
    assert [a["id"] for a in keys.list_accounts()] == [victim]  # nothing was created either


async def test_explicit_link_then_unlink(stores: tuple[KeyStore, IdentityStore]) -> None:
    keys, idents = stores
    team = keys.create_account("team")
    other = keys.create_account("other")
    resolver = links(keys, idents)
    await resolver.refresh()
    alice = Identity(ISS, "alice")
    with pytest.raises(PermissionDenied):
        await resolver.account_for(alice)
    rec = idents.link(ISS, "alice", team, actor="test")
    resolver._missing.clear()  # the negative cache lasts a second; the refresh loop or lookup finds it
    assert await resolver.account_for(alice) == team
    # same subject from another issuer is another identity
    with pytest.raises(PermissionDenied):
        await resolver.account_for(Identity("https://evil.example", "alice"))
    # re-linking moves it; the refresh picks up the change
    assert idents.link(ISS, "alice", other).id == rec.id
    await resolver.refresh()
    assert await resolver.account_for(alice) == other
    unlinked = idents.unlink(rec.id)
    assert unlinked is not None and unlinked.unlinked_at is not None
    await resolver.refresh()
    with pytest.raises(PermissionDenied):
        await resolver.account_for(alice)
    assert idents.list_links() == [] and len(idents.list_links(include_unlinked=True)) == 1


async def test_link_checks_account_and_text(stores: tuple[KeyStore, IdentityStore]) -> None:
    keys, idents = stores
    with pytest.raises(LookupError):
        idents.link(ISS, "alice", "acct_missing")
    team = keys.create_account("team")
    for issuer, subject in ((ISS, ""), (ISS, "a\x00b"), ("x" * 501, "alice"), (ISS, "y" * 256)):
        with pytest.raises(ValueError):
            idents.link(issuer, subject, team)


async def test_account_map_and_missing_mapped_account(stores: tuple[KeyStore, IdentityStore]) -> None:
    keys, idents = stores
    team = keys.create_account("team")
    resolver = links(keys, idents)
    assert await resolver.account_for(Identity(ISS, "bob", team)) == team
    with pytest.raises(PermissionDenied) as info:
        await resolver.account_for(Identity(ISS, "bob", "acct_gone"))
    assert "does not exist" in info.value.message


async def test_auto_accounts_are_their_own_namespace(stores: tuple[KeyStore, IdentityStore]) -> None:
    keys, idents = stores
    victim = keys.create_account("victim")
    resolver = links(keys, idents, auto=True)
    got = await resolver.account_for(Identity(ISS, victim))
    assert got == auto_account_id(ISS, victim) and got.startswith(AUTO_PREFIX) and got != victim
    assert len(got) <= 40
    assert await resolver.account_for(Identity(ISS, victim)) == got
    assert {a["id"] for a in keys.list_accounts()} == {victim, got}
    assert auto_account_id("a", "bc") != auto_account_id("ab", "c")
