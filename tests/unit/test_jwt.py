"""JWTVerifier: every acceptance and rejection case, with keys generated here (no I/O)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from perilune.errors import AuthenticationFailed
from perilune.gateway.identities import Identity
from perilune.gateway.jwks import JwksError, parse_jwks
from perilune.gateway.jwt import JWTVerifier, build_verifier, looks_like_jwt
from perilune.settings import Jwt, SettingsError, load_settings

SECRET = "an-hs256-secret-of-at-least-thirty-two-bytes!"
AUD, ISS = "perilune", "https://idp.example"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algo = RSAAlgorithm if isinstance(key, rsa.RSAPublicKey) else ECAlgorithm
    d: dict[str, Any] = algo.to_jwk(key, as_dict=True)
    return {**d, "kid": kid, **extra}


def jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


JWKS = jwks(jwk(RSA_KEY.public_key(), "rsa1"), jwk(EC_KEY.public_key(), "ec1"))


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"sub": "alice", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def rs256(kid: str = "rsa1", key: Any = RSA_KEY, **over: Any) -> str:
    return jwt.encode(claims(**over), key, algorithm="RS256", headers={"kid": kid})


def es256(**over: Any) -> str:
    return jwt.encode(claims(**over), EC_KEY, algorithm="ES256", headers={"kid": "ec1"})


def hs256(secret: str = SECRET, **over: Any) -> str:
    return jwt.encode(claims(**over), secret, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest() if hmac_key else b""
    return f"{signing_input}.{b64(sig)}"


async def sub(v: JWTVerifier, token: str) -> str:
    """The subject of the identity a token verifies as (which account it acts for is decided by
    perilune.gateway.identities; see tests/unit/test_identities.py)."""
    return (await v.identity_for(token)).subject


def hs_verifier(**cfg: Any) -> JWTVerifier:
    return JWTVerifier(Jwt(hs256_secret_env="S", audience=AUD, issuer=ISS, **cfg), secret=SECRET.encode())


def rs_verifier(source: Callable[[], Awaitable[bytes]] | None = None, data: bytes = JWKS, **cfg: Any
                ) -> JWTVerifier:
    return JWTVerifier(Jwt(jwks_url="http://idp.invalid/jwks", audience=AUD, issuer=ISS, **cfg),
                       source=source, initial=data)


async def rejected(v: JWTVerifier, token: str, code: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        await sub(v, token)
    e = info.value
    assert e.status_code == 401 and e.code == code, (e.code, e.message)
    assert token not in e.message and "alice" not in e.message
    assert e.openai_body()["error"]["type"] == "authentication_error"
    return e


# ---- acceptance ----
async def test_hs256_accepted_as_issuer_and_subject() -> None:
    v = JWTVerifier(Jwt(hs256_secret_env="S", audience=AUD, issuer=ISS), secret=SECRET.encode())
    token = hs256()
    assert await v.identity_for(token) == Identity(ISS, "alice", None)
    assert await sub(v, token) == "alice"
    assert await sub(v, hs256(sub="bob")) == "bob"
    assert await sub(v, hs256(exp=int(time.time()) + 900)) == "alice"
    # a subject that looks like an account id is still only a subject
    assert await v.identity_for(hs256(sub="acct_0123456789abcdef0123")) == Identity(
        ISS, "acct_0123456789abcdef0123", None)


async def test_rs256_and_es256_accepted() -> None:
    v = rs_verifier()
    assert await sub(v, rs256()) == "alice"
    assert await sub(v, es256(sub="carol")) == "carol"


async def test_account_map_maps_the_configured_claim_only() -> None:
    v = hs_verifier(account_claim="tenant", account_map={"acme": "acct_acme", "4217": "acct_num"})
    assert await v.identity_for(hs256(tenant="acme")) == Identity(ISS, "alice", "acct_acme")
    assert await v.identity_for(hs256(tenant=4217)) == Identity(ISS, "alice", "acct_num")
    assert await v.identity_for(hs256(tenant="other")) == Identity(ISS, "alice", None)
    assert await v.identity_for(hs256(sub="bob")) == Identity(ISS, "bob", None)  # no tenant claim


async def test_leeway_accepts_recently_expired_and_slightly_early() -> None:
    now = int(time.time())
    v = hs_verifier()
    assert await sub(v, hs256(exp=now - 10, iat=now - 100)) == "alice"
    assert await sub(v, hs256(nbf=now + 10)) == "alice"
    await rejected(hs_verifier(leeway_s=0), hs256(exp=now - 10, iat=now - 100), "expired_token")


async def test_audience_list_and_no_audience_configured() -> None:
    v = JWTVerifier(Jwt(hs256_secret_env="S", audience=["other", AUD]), secret=SECRET.encode())
    assert await sub(v, hs256()) == "alice"
    open_v = JWTVerifier(Jwt(hs256_secret_env="S"), secret=SECRET.encode())
    assert await sub(open_v, hs256(aud=None, iss=None)) == "alice"
    # with no audience configured, a token meant for some audience is not accepted here
    await rejected(open_v, hs256(), "invalid_audience")


# ---- rejection ----


def now() -> int:  # read when the case runs: the suite may run long after this module is imported
    return int(time.time())

CASES: list[tuple[str, Callable[[], str], str]] = [
    ("expired", lambda: rs256(exp=now() - 120, iat=now() - 700), "expired_token"),
    ("not yet valid (nbf)", lambda: rs256(nbf=now() + 300), "token_not_yet_valid"),
    ("issued in the future", lambda: rs256(iat=now() + 300), "token_not_yet_valid"),
    ("wrong audience", lambda: rs256(aud="someone-else"), "invalid_audience"),
    ("missing audience", lambda: rs256(aud=None), "missing_claim"),
    ("wrong issuer", lambda: rs256(iss="https://evil.example"), "invalid_issuer"),
    ("missing exp", lambda: rs256(exp=None), "missing_claim"),
    ("missing sub", lambda: rs256(sub=None), "missing_claim"),
    ("sub too long", lambda: rs256(sub="x" * 256), "invalid_claim"),
    ("sub not a string", lambda: rs256(sub=["alice"]), "invalid_token"),
    ("alg none", lambda: hand_made({"alg": "none", "typ": "JWT"}, claims()), "unsupported_algorithm"),
    ("alg None", lambda: hand_made({"alg": "None", "kid": "rsa1"}, claims()), "unsupported_algorithm"),
    ("HS256 signed with the RSA public key",
     lambda: hand_made({"alg": "HS256", "kid": "rsa1"}, claims(), RSA_PEM), "unsupported_algorithm"),
    ("ES256 header on an RSA key", lambda: jwt.encode(claims(), EC_KEY, algorithm="ES256",
                                                      headers={"kid": "rsa1"}), "unsupported_algorithm"),
    ("RS256 header on an EC key", lambda: rs256(kid="ec1"), "unsupported_algorithm"),
    ("PS256 not in the allow-list", lambda: jwt.encode(claims(), RSA_KEY, algorithm="PS256",
                                                       headers={"kid": "rsa1"}), "unsupported_algorithm"),
    ("tampered payload", lambda: tamper_payload(rs256()), "invalid_signature"),
    ("tampered signature", lambda: tamper_signature(rs256()), "invalid_signature"),
    ("signed by another key", lambda: rs256(key=RSA_KEY2), "invalid_signature"),
    ("unknown kid", lambda: rs256(kid="rotated-away"), "unknown_kid"),
    ("garbage", lambda: "abc.def.ghi", "invalid_token"),
    ("header not JSON", lambda: b64(b"{nope") + "." + rs256().split(".", 1)[1], "invalid_token"),
    ("header without alg", lambda: hand_made({"typ": "JWT"}, claims()), "invalid_token"),
]


def tamper_payload(token: str) -> str:
    h, _, s = token.split(".")
    return f"{h}.{b64(json.dumps(claims(sub='mallory')).encode())}.{s}"


def tamper_signature(token: str) -> str:
    h, p, s = token.split(".")
    mid = len(s) // 2
    return f"{h}.{p}.{s[:mid]}{'A' if s[mid] != 'A' else 'B'}{s[mid + 1:]}"


@pytest.mark.parametrize(("token", "code"), [(make, code) for _, make, code in CASES],
                         ids=[name for name, _, _ in CASES])
async def test_rejected(token: Callable[[], str], code: str) -> None:
    v = rs_verifier()
    t = token()
    assert looks_like_jwt(t)
    await rejected(v, t, code)
    await rejected(v, t, code)  # the short-lived negative cache answers the same


async def test_hs_verifier_rejections() -> None:
    v = hs_verifier()
    await rejected(v, hs256(secret="another-secret-that-is-also-32-bytes-long"), "invalid_signature")
    await rejected(v, hand_made({"alg": "none"}, claims()), "unsupported_algorithm")
    await rejected(v, rs256(), "unsupported_algorithm")  # no JWKS: RS256 is not in the allow-list
    signing_input = b64(b'{"alg": "HS256"}') + "." + b64(b"[1,")
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    await rejected(v, f"{signing_input}.{b64(sig)}", "invalid_token")  # signed, but the payload is not JSON


async def test_hs_rs_confusion_with_both_configured() -> None:
    """With a secret and a JWKS, an HS256 token is checked against the secret only, never a public key."""
    v = JWTVerifier(Jwt(hs256_secret_env="S", jwks_url="http://idp.invalid/jwks", audience=AUD, issuer=ISS),
                    secret=SECRET.encode(), initial=JWKS)
    assert v.algorithms == {"HS256", "RS256", "ES256"}
    assert await sub(v, hs256()) == "alice" and await sub(v, rs256()) == "alice"
    await rejected(v, hand_made({"alg": "HS256", "kid": "rsa1"}, claims(), RSA_PEM), "invalid_signature")


def test_looks_like_jwt() -> None:
    assert looks_like_jwt(rs256()) and looks_like_jwt("a.b.") and looks_like_jwt("a=.b.c")
    for s in ("pk_live_0123456789abcdef", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.c!", "a b.c.d"):
        assert not looks_like_jwt(s), s


# ---- cache, key set and refetch ----
async def test_cached_token_rechecks_expiry_without_reverifying(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = [0.0]
    v = JWTVerifier(Jwt(hs256_secret_env="S", audience=AUD, issuer=ISS, leeway_s=5), secret=SECRET.encode(),
                    clock=lambda: time.time() + offset[0])
    token = hs256(exp=int(time.time()) + 60)
    assert await sub(v, token) == "alice"
    calls = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert await sub(v, token) == "alice"
    assert calls == []
    offset[0] = 70.0  # past exp + leeway by our clock: the cached entry no longer answers, PyJWT decides
    assert await sub(v, token) == "alice"
    assert calls == [1]


async def test_unknown_kid_triggers_one_rate_limited_refetch() -> None:
    served = [JWKS]
    fetches = []

    async def source() -> bytes:
        fetches.append(1)
        await asyncio.sleep(0.01)
        return served[0]

    v = rs_verifier(source, jwks_min_refetch_s=60)
    await rejected(v, rs256(kid="rsa2", key=RSA_KEY2), "unknown_kid")
    assert len(fetches) == 1
    served[0] = jwks(jwk(RSA_KEY.public_key(), "rsa1"), jwk(RSA_KEY2.public_key(), "rsa2"))
    # within the rate limit: no refetch, even for another unknown kid
    await rejected(v, rs256(kid="rsa2", key=RSA_KEY2, jti="x"), "unknown_kid")
    assert len(fetches) == 1

    v2 = rs_verifier(source, jwks_min_refetch_s=60)
    fetches.clear()
    tokens = [rs256(kid="rsa2", key=RSA_KEY2, jti=str(i)) for i in range(8)]
    assert await asyncio.gather(*(sub(v2, t) for t in tokens)) == ["alice"] * 8
    assert len(fetches) == 1  # one shared refetch for all eight


async def test_key_set_change_clears_cache_and_drops_removed_keys() -> None:
    served = [JWKS]

    async def source() -> bytes:
        return served[0]

    v = rs_verifier(source, jwks_min_refetch_s=0)
    token = rs256()
    assert await sub(v, token) == "alice"
    assert await v.refresh() is False  # unchanged document: nothing to do
    served[0] = jwks(jwk(RSA_KEY2.public_key(), "rsa2"))
    assert await v.refresh() is True
    await rejected(v, token, "unknown_kid")


async def test_refresh_failure_keeps_keys() -> None:
    async def broken() -> bytes:
        raise OSError("connection refused")

    v = rs_verifier(broken)
    await v.start()
    try:
        assert await sub(v, rs256()) == "alice"
    finally:
        await v.stop()


# ---- JWKS parsing ----
def test_parse_jwks_filters_keys() -> None:
    allowed = frozenset({"RS256", "ES256"})
    doc = jwks(
        jwk(RSA_KEY.public_key(), "sig"),
        jwk(RSA_KEY2.public_key(), "enc", use="enc"),
        {"kty": "oct", "k": b64(SECRET.encode()), "kid": "hmac"},
        jwk(RSA_KEY2.public_key(), "ps-only", alg="PS256"),
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        jwk(EC_KEY.public_key(), "ec"),
        {**RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True), "kid": "private"},
    )
    keys = parse_jwks(doc, allowed)
    assert [(k.kid, sorted(k.algorithms)) for k in keys] == [
        ("sig", ["RS256"]), ("ec", ["ES256"]), ("private", ["RS256"])]
    assert isinstance(keys[2].key, rsa.RSAPublicKey)
    for bad in (b"not json", b"[]", b'{"keys": {}}', jwks({"kty": "oct", "k": "AAAA"})):
        with pytest.raises(JwksError):
            parse_jwks(bad, allowed)


# ---- configuration ----
@pytest.mark.parametrize(("body", "message"), [
    ('hs256_secret_env = "S"\nalgorithms = ["none"]', "jwt.algorithms must not include 'none'"),
    ('hs256_secret_env = "S"\nalgorithms = ["HS256", "NONE"]', "jwt.algorithms must not include 'none'"),
    ('hs256_secret_env = "S"\nalgorithms = ["XS256"]', "jwt.algorithms: unsupported algorithm 'XS256'"),
    ('hs256_secret_env = "S"\nalgorithms = ["RS256"]', "jwt.algorithms lists RS256, which needs jwt.jwks"),
    ('jwks_file = "/k.json"\nalgorithms = ["HS256"]', "jwt.algorithms lists HS256, which needs"),
    ('hs256_secret_env = "S"\njwks_file = "/k.json"\nalgorithms = ["HS256"]', "the JWKS would never be used"),
    ('audience = "a"', "jwt needs jwt.hs256_secret_env, jwt.jwks_file or jwt.jwks_url"),
    ('jwks_file = "/k"\njwks_url = "https://x/jwks"', "jwt.jwks_file and jwt.jwks_url are exclusive"),
    ('jwks_url = "file:///etc/passwd"', "jwt.jwks_url must start with http:// or https://"),
    ('hs256_secret_env = "S"\nleeway_s = -1', "jwt.leeway_s"),
    ('hs256_secret_env = "S"\nleway_s = 5', "unknown field `leway_s`"),
])
def test_settings_rejected(tmp_path: Any, body: str, message: str) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[jwt]\n" + body + "\n")
    with pytest.raises(SettingsError) as info:
        load_settings(cfg, environ={})
    assert message in str(info.value)


def test_settings_defaults(tmp_path: Any) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[jwt]\njwks_url = "https://idp.example/jwks"\naudience = "perilune"\n')
    j = load_settings(cfg, environ={}).jwt
    assert j is not None
    assert (j.allowed_algorithms, j.account_claim, j.leeway_s, j.required_claims) == (
        ("RS256", "ES256"), "sub", 30.0, ["exp"])
    assert Jwt(hs256_secret_env="S").allowed_algorithms == ("HS256",)


def test_build_verifier_checks_secret_and_file(tmp_path: Any) -> None:
    cfg = Jwt(hs256_secret_env="JWT_SECRET")
    with pytest.raises(SettingsError, match=r"jwt\.hs256_secret_env: environment variable JWT_SECRET is not"):
        build_verifier(cfg, {})
    with pytest.raises(SettingsError, match="shorter than 32 bytes"):
        build_verifier(cfg, {"JWT_SECRET": "short"})
    assert build_verifier(cfg, {"JWT_SECRET": SECRET}).algorithms == {"HS256"}
    with pytest.raises(SettingsError, match=r"jwt\.jwks_file: cannot read"):
        build_verifier(Jwt(jwks_file=str(tmp_path / "missing.json")), {})
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": []}')
    with pytest.raises(SettingsError, match=r"jwt\.jwks_file: .*no usable signing key"):
        build_verifier(Jwt(jwks_file=str(bad)), {})
