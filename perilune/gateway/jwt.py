"""JWT bearer tokens -> :class:`Identity` (issuer + subject), verified with PyJWT against a configured
secret or key set. Which account an identity acts for is decided by :mod:`perilune.gateway.identities`
(an operator's link or mapping), never by a claim naming an account.

Which key verifies a token is decided here, never by the token alone: HMAC algorithms only ever use
the configured secret; asymmetric algorithms only use the JWKS key whose ``kid`` matches, and only
with an algorithm of that key's type (RSA: RS*/PS*, EC: the ES* of its curve, OKP: EdDSA) that is
also in the configured allow-list. ``alg: none`` is never accepted, and symmetric (``oct``) keys in a
JWKS are ignored, so an HS256 token signed with a public key as its "secret" cannot verify.

A token is fully verified once (PyJWT costs a few hundred µs here); afterwards only its time window
is checked, from a bounded in-memory cache that is emptied whenever the key set changes. The key set
is loaded at start and refreshed in the background; a token with an unknown ``kid`` triggers at most
one rate-limited refetch. Every failure is an :class:`AuthenticationFailed` with a specific code and
a message that never echoes the token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
import orjson

from perilune._outbound import OutboundPolicy
from perilune.errors import AuthenticationFailed
from perilune.gateway.identities import Identity
from perilune.gateway.jwks import JwkKey, JwksError, JwksSource, file_source, parse_jwks, url_source
from perilune.settings import JWT_HMAC_ALGORITHMS, Jwt, SettingsError

log = logging.getLogger("perilune.auth.jwt")

VERIFIED_MAX = 4096
REJECTED_MAX = 10_000
REJECTED_TTL_S = 1.0
MAX_SUBJECT = 255  # identities.subject is String(255)
MAX_ISSUER = 500

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]+=*\.[A-Za-z0-9_-]*=*")

# PyJWT exception -> (code, message); subclasses first (InvalidSignatureError is a DecodeError).
_FAILURES: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired_token", "The token has expired."),
    (jwt.ImmatureSignatureError, "token_not_yet_valid",
     "The token is not valid yet (nbf or iat is in the future)."),
    (jwt.InvalidAudienceError, "invalid_audience", "The token's audience (aud) is not accepted here."),
    (jwt.InvalidIssuerError, "invalid_issuer", "The token's issuer (iss) is not accepted here."),
    (jwt.InvalidSignatureError, "invalid_signature", "The token's signature does not verify."),
    (jwt.InvalidAlgorithmError, "unsupported_algorithm", "The token's signing algorithm is not accepted."),
    (jwt.DecodeError, "invalid_token", "The token is malformed."),
)


def looks_like_jwt(credential: str) -> bool:
    """Three base64url segments (the last may be empty, as in an unsigned token)."""
    return credential.count(".") == 2 and _JWT_SHAPE.fullmatch(credential) is not None


def _fail(code: str, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code)


class _UnknownKid(Exception):
    pass


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0].rstrip("=")
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise _fail("invalid_token", "The token is malformed.") from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise _fail("invalid_token", "The token is malformed.")
    return header


class JWTVerifier:
    def __init__(self, cfg: Jwt, *, secret: bytes | None = None, source: JwksSource | None = None,
                 initial: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.algorithms = frozenset(cfg.allowed_algorithms)
        self._asymmetric = self.algorithms - set(JWT_HMAC_ALGORITHMS)
        self._secret = secret
        self._source = source
        self._clock = clock
        self._options: Any = {"require": list(cfg.required_claims)}
        self._raw: bytes | None = None
        self._keys: tuple[JwkKey, ...] = ()
        self._verified: dict[str, tuple[Identity, float, float]] = {}  # token -> (identity, from, until)
        self._rejected: dict[str, tuple[float, str, str]] = {}  # token -> (until, code, message)
        self._next_kid_refetch = 0.0
        self._kid_refetch: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        if initial is not None:
            self._install(initial)

    # ---- key set ----
    def _install(self, data: bytes) -> None:
        self._keys = parse_jwks(data, self._asymmetric)
        self._raw = data
        self._verified.clear()
        self._rejected.clear()

    async def refresh(self) -> bool:
        """Reload the key set from its source; True when it changed. Raises when it cannot be used."""
        if self._source is None:
            return False
        data = await self._source()
        if data == self._raw:
            return False
        self._install(data)
        log.info("JWT key set loaded: %d key(s)", len(self._keys))
        return True

    async def _refresh_logged(self) -> bool:
        try:
            return await self.refresh()
        except Exception as e:  # the identity provider may be briefly away; keep the keys we have
            log.warning("JWT key set refresh failed, keeping %d key(s): %s", len(self._keys), e)
            return False

    async def start(self) -> None:
        if self._source is None:
            return
        if self._raw is None:
            await self._refresh_logged()
        self._task = asyncio.create_task(self._loop(), name="perilune-jwks-refresh")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._kid_refetch) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:  # until the key set has loaded once, retry sooner
            wait = self.cfg.jwks_refresh_s if self._raw is not None else max(1.0, self.cfg.jwks_min_refetch_s)
            await asyncio.sleep(min(wait, self.cfg.jwks_refresh_s))
            await self._refresh_logged()

    async def _refetch_for_kid(self) -> bool:
        """At most one refetch per ``jwks_min_refetch_s``, shared by every request that asks meanwhile."""
        if self._source is None:
            return False
        task = self._kid_refetch
        if task is None:
            now = time.monotonic()
            if now < self._next_kid_refetch:
                return False
            self._next_kid_refetch = now + self.cfg.jwks_min_refetch_s
            task = self._kid_refetch = asyncio.create_task(self._refresh_logged())
            task.add_done_callback(self._kid_refetch_done)
        return await asyncio.shield(task)

    def _kid_refetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._kid_refetch is task:
            self._kid_refetch = None

    # ---- verification ----
    def _key_for(self, header: Mapping[str, Any]) -> Any:
        alg = header["alg"]
        if alg.strip().lower() == "none":
            raise _fail("unsupported_algorithm", "Unsigned tokens (alg 'none') are not accepted.")
        if alg not in self.algorithms:
            raise _fail("unsupported_algorithm", "The token's signing algorithm is not accepted.")
        if alg in JWT_HMAC_ALGORITHMS:
            if self._secret is None:
                raise _fail("unsupported_algorithm", "The token's signing algorithm is not accepted.")
            return self._secret
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail("invalid_token", "The token is malformed.")
        named = [k for k in self._keys if k.kid == kid] if kid is not None else list(self._keys)
        if kid is not None and not named:
            raise _UnknownKid
        usable = [k for k in named if alg in k.algorithms]
        if not usable:
            raise _fail("unsupported_algorithm", "The token's signing algorithm does not match its key.")
        if len(usable) > 1:
            raise _fail("unknown_kid", "The token names no key id (kid) and several keys could verify it.")
        return usable[0].key

    def verify(self, token: str) -> tuple[Identity, float, float]:
        """Full verification: (identity, valid from, valid until). Raises AuthenticationFailed."""
        header = _header(token)
        key = self._key_for(header)
        cfg = self.cfg
        try:
            claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=cfg.audience,
                                issuer=cfg.issuer, leeway=cfg.leeway_s, options=self._options)
        except jwt.MissingRequiredClaimError as e:
            raise _fail("missing_claim", f"The token is missing the required '{e.claim}' claim.") from None
        except jwt.PyJWTError as e:
            for kind, code, message in _FAILURES:
                if isinstance(e, kind):
                    raise _fail(code, message) from None
            raise _fail("invalid_token", "The token is not valid.") from None
        return self._identity(claims), self._valid_from(claims), self._valid_until(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        subject = _claim_text(claims, "sub", MAX_SUBJECT, required=True)
        issuer = _claim_text(claims, "iss", MAX_ISSUER, required=False) or ""
        mapped = None
        if self.cfg.account_map:
            value = claims.get(self.cfg.account_claim)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str):
                mapped = self.cfg.account_map.get(value)
        return Identity(issuer, subject or "", mapped)

    def _valid_from(self, claims: Mapping[str, Any]) -> float:
        times = [t for t in (claims.get("nbf"), claims.get("iat")) if isinstance(t, int | float)]
        return max(times) - self.cfg.leeway_s if times else -math.inf

    def _valid_until(self, claims: Mapping[str, Any]) -> float:
        exp = claims.get("exp")
        return float(exp) + self.cfg.leeway_s if isinstance(exp, int | float) else math.inf

    async def identity_for(self, token: str) -> Identity:
        """The verified identity of a bearer JWT. Raises AuthenticationFailed."""
        now = self._clock()
        hit = self._verified.get(token)
        if hit is not None:
            if hit[1] <= now < hit[2]:
                return hit[0]
            del self._verified[token]
        bad = self._rejected.get(token)
        if bad is not None and bad[0] > now:
            raise _fail(bad[1], bad[2])
        try:
            try:
                ident, valid_from, valid_until = self.verify(token)
            except _UnknownKid:
                if not await self._refetch_for_kid():
                    raise _fail("unknown_kid", "The token's key id (kid) is not in the key set.") from None
                try:
                    ident, valid_from, valid_until = self.verify(token)
                except _UnknownKid:
                    raise _fail("unknown_kid", "The token's key id (kid) is not in the key set.") from None
        except AuthenticationFailed as e:
            if len(self._rejected) >= REJECTED_MAX:
                self._rejected.clear()
            self._rejected[token] = (now + REJECTED_TTL_S, e.code or "invalid_token", e.message)
            raise
        if len(self._verified) >= VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (ident, valid_from, valid_until)
        return ident


def _claim_text(claims: Mapping[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise _fail("missing_claim", f"The token is missing the required '{name}' claim.")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise _fail("invalid_claim", f"The token's '{name}' claim must be a string of 1 to {limit} characters.")
    return value


def build_verifier(cfg: Jwt, environ: Mapping[str, str], outbound: OutboundPolicy | None = None
                   ) -> JWTVerifier:
    """The verifier for ``[jwt]``; configuration problems raise SettingsError naming the key."""
    secret: bytes | None = None
    if cfg.hs256_secret_env:
        value = environ.get(cfg.hs256_secret_env)
        if not value:
            raise SettingsError(f"jwt.hs256_secret_env: environment variable {cfg.hs256_secret_env} "
                                "is not set")
        secret = value.encode()
        if len(secret) < 32:
            raise SettingsError(f"jwt.hs256_secret_env: the secret in {cfg.hs256_secret_env} is shorter than "
                                "32 bytes (HS256 needs at least 256 bits)")
    source: JwksSource | None = None
    initial: bytes | None = None
    if cfg.jwks_file:
        path = Path(cfg.jwks_file).expanduser()
        try:
            initial = path.read_bytes()
        except OSError as e:
            raise SettingsError(f"jwt.jwks_file: cannot read {path}: {e.strerror}") from None
        source = file_source(path)
    elif cfg.jwks_url:
        source = url_source(cfg.jwks_url, outbound)
    try:
        return JWTVerifier(cfg, secret=secret, source=source, initial=initial)
    except JwksError as e:
        raise SettingsError(f"jwt.jwks_file: {cfg.jwks_file}: {e}") from None
