"""JWKS key sets for JWT verification: parse a document into typed public keys, read it from a file or URL.

Each key is kept with the algorithms its type allows (RSA: RS*/PS*, EC: the ES* of its curve, OKP:
EdDSA) intersected with the configured allow-list and the JWK's own ``alg``. Symmetric (``oct``) keys
and keys whose ``use`` is not ``sig`` are skipped: HMAC secrets come from ``jwt.hs256_secret_env`` only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from perilune import _outbound
from perilune._outbound import OutboundPolicy, OutboundRefused

log = logging.getLogger("perilune.auth.jwt")

JwksSource = Callable[[], Awaitable[bytes]]

MAX_JWKS_BYTES = 1024 * 1024
FETCH_TIMEOUT_S = 10.0

_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_CURVE_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_LOADERS: dict[str, Callable[[Any], Any]] = {"RSA": RSAAlgorithm.from_jwk, "EC": ECAlgorithm.from_jwk,
                                             "OKP": OKPAlgorithm.from_jwk}


class JwksError(ValueError):
    """A key set that cannot be used."""


@dataclass(frozen=True, slots=True)
class JwkKey:
    kid: str | None
    key: Any  # a cryptography public key
    algorithms: frozenset[str]


def _key_algorithms(key: Any) -> frozenset[str]:
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _CURVE_ALG.get(key.curve.name)
        return frozenset({alg}) if alg else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def parse_jwks(data: bytes, allowed: frozenset[str]) -> tuple[JwkKey, ...]:
    """The usable signing keys of a JWKS document; keys of other types or uses are skipped."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise JwksError("not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('expected a JSON object with a "keys" list')
    out: list[JwkKey] = []
    for i, jwk in enumerate(doc["keys"]):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        loader = _LOADERS.get(str(jwk.get("kty")))
        if loader is None:  # "oct" included: HMAC secrets come from jwt.hs256_secret_env only
            log.warning("JWKS key %d: key type %r ignored", i, jwk.get("kty"))
            continue
        try:
            key = loader(jwk)
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            log.warning("JWKS key %d ignored: %s", i, e)
            continue
        if not hasattr(key, "verify"):  # a private JWK: keep only its public half
            key = key.public_key()
        algs = _key_algorithms(key) & allowed
        if "alg" in jwk:
            algs &= {jwk["alg"]}
        kid = jwk.get("kid")
        if algs and (kid is None or isinstance(kid, str)):
            out.append(JwkKey(kid, key, frozenset(algs)))
    if not out:
        raise JwksError(f"no usable signing key for the allowed algorithms ({', '.join(sorted(allowed))})")
    return tuple(out)


def file_source(path: Path) -> JwksSource:
    async def read() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return read


def url_source(url: str, policy: OutboundPolicy | None = None) -> JwksSource:
    """Fetch the key set through the outbound guard: https only, no private addresses, no redirects,
    unless ``[outbound]`` allows them (see perilune._outbound)."""
    policy = policy or OutboundPolicy(timeout_s=FETCH_TIMEOUT_S)

    async def fetch() -> bytes:
        try:
            status, data = await _outbound.get(url, policy, max_bytes=MAX_JWKS_BYTES,
                                               headers={"Accept": "application/json"})
        except OutboundRefused as e:
            raise JwksError(f"jwt.jwks_url {e}") from None
        if status != 200:
            raise JwksError(f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else ""))
        return data

    return fetch
