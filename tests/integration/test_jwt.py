"""JWT bearer tokens end to end: the official openai SDK with ``api_key=<jwt>`` against perilune.

Three gateways: a JWKS file, a JWKS URL served by a local http.server (with key rotation), and an
HS256 secret. Keys are generated here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from perilune.gateway.identities import auto_account_id
from perilune.store.db import Database
from perilune.store.keys import KeyStore
from tests.conftest import ADMIN_KEY, Gateway, StartGateway, default_config, free_port

AUD, ISS = "perilune-test", "https://idp.test"
SECRET = "integration-hs256-secret-" + "x" * 24
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
MSG = [{"role": "user", "content": "Hello"}]

MESSAGES = {
    "expired_token": "The token has expired.",
    "token_not_yet_valid": "The token is not valid yet (nbf or iat is in the future).",
    "invalid_audience": "The token's audience (aud) is not accepted here.",
    "invalid_issuer": "The token's issuer (iss) is not accepted here.",
    "invalid_signature": "The token's signature does not verify.",
    "unknown_kid": "The token's key id (kid) is not in the key set.",
    "invalid_token": "The token is malformed.",
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(*pairs: tuple[Any, str]) -> bytes:
    keys = []
    for key, kid in pairs:
        algo = RSAAlgorithm if isinstance(key, rsa.RSAPublicKey) else ECAlgorithm
        keys.append({**algo.to_jwk(key, as_dict=True), "kid": kid})
    return json.dumps({"keys": keys}).encode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"sub": "jwt-alice", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 600,
                         "jti": uuid.uuid4().hex}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def rs256(kid: str = "rsa1", key: Any = RSA_KEY, **over: Any) -> str:
    return jwt.encode(claims(**over), key, algorithm="RS256", headers={"kid": kid})


def es256(**over: Any) -> str:
    return jwt.encode(claims(**over), EC_KEY, algorithm="ES256", headers={"kid": "ec1"})


def hand_made(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest() if hmac_key else b""
    return f"{signing_input}.{b64(sig)}"


def tamper_payload(token: str) -> str:
    h, _, s = token.split(".")
    return f"{h}.{b64(json.dumps(claims(sub='jwt-mallory')).encode())}.{s}"


def tamper_signature(token: str) -> str:
    h, p, s = token.split(".")
    mid = len(s) // 2
    return f"{h}.{p}.{s[:mid]}{'A' if s[mid] != 'A' else 'B'}{s[mid + 1:]}"




def now() -> int:  # read when the case runs, not at import
    return int(time.time())

M = MESSAGES
NO_ALG_NONE = "Unsigned tokens (alg 'none') are not accepted."
ALG_REFUSED = "The token's signing algorithm is not accepted."
ASYMMETRIC_BAD: list[tuple[str, Callable[[], str], str, str]] = [
    ("expired", lambda: rs256(exp=now() - 300, iat=now() - 900), "expired_token", M["expired_token"]),
    ("nbf in the future", lambda: rs256(nbf=now() + 600), "token_not_yet_valid", M["token_not_yet_valid"]),
    ("wrong audience", lambda: es256(aud="another-api"), "invalid_audience", M["invalid_audience"]),
    ("wrong issuer", lambda: rs256(iss="https://evil.test"), "invalid_issuer", M["invalid_issuer"]),
    ("alg none", lambda: hand_made({"alg": "none", "typ": "JWT"}, claims()), "unsupported_algorithm",
     NO_ALG_NONE),
    ("HS256 signed with the RSA public key",
     lambda: hand_made({"alg": "HS256", "kid": "rsa1"}, claims(), RSA_PEM),
     "unsupported_algorithm", ALG_REFUSED),
    ("tampered payload", lambda: tamper_payload(rs256()), "invalid_signature", M["invalid_signature"]),
    ("tampered signature", lambda: tamper_signature(es256()), "invalid_signature", M["invalid_signature"]),
    ("unknown kid", lambda: rs256(kid="nobody"), "unknown_kid", M["unknown_kid"]),
    ("missing sub", lambda: rs256(sub=None), "missing_claim",
     "The token is missing the required 'sub' claim."),
    ("garbage", lambda: "eyJhbGciOi.Jnone.x", "invalid_token", M["invalid_token"]),
]


# the JWKS server of these tests is on 127.0.0.1 over http: the operator allows that explicitly
OUTBOUND_LOCAL = '\n[outbound]\nallow_http = true\nallow_hosts = ["127.0.0.1"]\n'


def jwt_config(sim_url: str, section: str) -> str:
    # Accounts created from a JWT start with no prepaid balance; these tests are about authentication.
    return ("prepaid = false\n" + default_config(sim_url)
            + f'\n[jwt]\naudience = "{AUD}"\nissuer = "{ISS}"\n{section}\n')


def assert_401(gw: Gateway, token: str, code: str, message: str) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=token, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="sim-gpt", messages=MSG)  # type: ignore[arg-type]
    assert info.value.status_code == 401
    assert info.value.response.json() == {
        "error": {"message": message, "type": "authentication_error", "param": None, "code": code}}


def chat_ok(gw: Gateway, token: str) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=token, max_retries=0)
    r = client.chat.completions.create(model="sim-gpt", messages=MSG)  # type: ignore[arg-type]
    assert r.object == "chat.completion" and r.choices[0].message.content


def account_names(gw: Gateway) -> dict[str, str]:
    r = httpx.get(gw.url + "/admin/accounts", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200
    return {a["id"]: a["name"] for a in r.json()["data"]}


# ---- JWKS file ----
@pytest.fixture(scope="module")
def file_gateway(start_gateway: StartGateway, sim_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Gateway:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_bytes(jwks((RSA_KEY.public_key(), "rsa1"), (EC_KEY.public_key(), "ec1")))
    return start_gateway(config=jwt_config(sim_url, f'jwks_file = "{path}"\nauto_accounts = true'))


def test_jwks_file_rs256_and_es256_accepted(file_gateway: Gateway) -> None:
    before = account_names(file_gateway)
    alice, bob = auto_account_id(ISS, "jwt-alice"), auto_account_id(ISS, "jwt-bob")
    assert alice not in before and bob not in before
    chat_ok(file_gateway, rs256())
    chat_ok(file_gateway, es256(sub="jwt-bob"))
    token = rs256()
    for _ in range(3):
        chat_ok(file_gateway, token)
    after = account_names(file_gateway)
    assert after[alice] == "jwt-alice" and after[bob] == "jwt-bob"  # auto_accounts: ids of their own
    assert len(after) == len(before) + 2


def test_jwks_file_streaming_with_jwt(file_gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=file_gateway.v1, api_key=es256(), max_retries=0)
    chunks = list(client.chat.completions.create(model="sim-gpt", messages=MSG, stream=True))  # type: ignore
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize(("make", "code", "message"), [c[1:] for c in ASYMMETRIC_BAD],
                         ids=[c[0] for c in ASYMMETRIC_BAD])
def test_jwks_file_rejections(file_gateway: Gateway, make: Callable[[], str], code: str, message: str
                              ) -> None:
    assert_401(file_gateway, make(), code, message)


def test_api_key_still_works_alongside_jwt(file_gateway: Gateway) -> None:
    chat_ok(file_gateway, file_gateway.key)
    assert_401(file_gateway, "pk_live_not-a-real-key", "invalid_api_key", "Invalid API key.")


def test_anthropic_dialect_and_x_api_key(file_gateway: Gateway) -> None:
    body = {"model": "sim-gpt", "max_tokens": 16, "messages": MSG}
    expired = rs256(exp=now() - 300, iat=now() - 900)
    r = httpx.post(file_gateway.v1 + "/messages", json=body,
                   headers={"x-api-key": expired, "anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json() == {"type": "error", "error": {"type": "authentication_error",
                                                   "message": MESSAGES["expired_token"]}}
    r = httpx.post(file_gateway.v1 + "/chat/completions", json={"model": "sim-gpt", "messages": MSG},
                   headers={"x-api-key": es256()})
    assert r.status_code == 200, r.text


# ---- JWKS URL, with rotation ----
class JwksServer:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    srv = JwksServer(jwks((RSA_KEY.public_key(), "rsa1"), (EC_KEY.public_key(), "ec1")))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def url_gateway(start_gateway: StartGateway, sim_url: str, jwks_server: JwksServer) -> Gateway:
    return start_gateway(config=jwt_config(
        sim_url, f'jwks_url = "{jwks_server.url}"\njwks_refresh_s = 3600\njwks_min_refetch_s = 0\n'
                 'auto_accounts = true') + OUTBOUND_LOCAL)


def test_jwks_url_accepts_and_rotates_keys(url_gateway: Gateway, jwks_server: JwksServer) -> None:
    assert jwks_server.hits == 1  # fetched once at start, off the request path
    chat_ok(url_gateway, rs256(sub="jwt-carol"))
    chat_ok(url_gateway, es256())
    assert jwks_server.hits == 1
    new_token = rs256(kid="rsa2", key=RSA_KEY2)
    assert_401(url_gateway, new_token, "unknown_kid", MESSAGES["unknown_kid"])
    assert jwks_server.hits == 2  # the unknown kid triggered one refetch
    jwks_server.body = jwks((RSA_KEY.public_key(), "rsa1"), (EC_KEY.public_key(), "ec1"),
                            (RSA_KEY2.public_key(), "rsa2"))
    chat_ok(url_gateway, rs256(kid="rsa2", key=RSA_KEY2))
    assert jwks_server.hits == 3
    chat_ok(url_gateway, rs256(kid="rsa2", key=RSA_KEY2))  # known now: no fetch
    assert jwks_server.hits == 3
    assert account_names(url_gateway)[auto_account_id(ISS, "jwt-carol")] == "jwt-carol"


URL_BAD = [c for c in ASYMMETRIC_BAD if c[2] != "unknown_kid"]  # unknown kids: see the rotation test


@pytest.mark.parametrize(("make", "code", "message"), [c[1:] for c in URL_BAD], ids=[c[0] for c in URL_BAD])
def test_jwks_url_rejections(url_gateway: Gateway, make: Callable[[], str], code: str, message: str) -> None:
    assert_401(url_gateway, make(), code, message)


# ---- HS256 ----
@pytest.fixture(scope="module")
def hs_gateway(start_gateway: StartGateway, sim_url: str) -> Gateway:
    section = ('hs256_secret_env = "TEST_JWT_SECRET"\naccount_claim = "org"\n'
               'account_map = { "jwt-org-1" = "acct_mapped_org1" }')
    return start_gateway(config=jwt_config(sim_url, section), env={"TEST_JWT_SECRET": SECRET})


def hs256(secret: str = SECRET, **over: Any) -> str:
    return jwt.encode(claims(**over), secret, algorithm="HS256")


def test_hs256_account_map_from_config(hs_gateway: Gateway) -> None:
    assert_403_not_linked(hs_gateway, hs256(org="jwt-org-1"))  # mapped account does not exist yet
    db = Database(f"sqlite:///{hs_gateway.home / 'perilune.db'}")
    KeyStore(db).ensure_account("acct_mapped_org1", "org one")
    db.dispose()
    chat_ok(hs_gateway, hs256(org="jwt-org-1"))
    r = httpx.get(hs_gateway.v1 + "/balance", headers={"Authorization": f"Bearer {hs256(org='jwt-org-1')}"})
    assert r.status_code == 200 and r.json()["account_id"] == "acct_mapped_org1"
    assert_403_not_linked(hs_gateway, hs256(org="jwt-org-2"))  # not in the map, not linked
    chat_ok(hs_gateway, hs_gateway.key)


def assert_403_not_linked(gw: Gateway, token: str) -> None:
    for path in ("/balance", "/usage/records"):
        r = httpx.get(gw.v1 + path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "identity_not_linked"
    r = httpx.post(gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {token}"},
                   json={"model": "sim-gpt", "messages": MSG})
    assert r.status_code == 403 and r.json()["error"]["code"] == "identity_not_linked"


def settled_balance(gw: Gateway) -> str:
    """The balance once two reads half a second apart agree."""
    last = None
    for _ in range(40):
        r = httpx.get(gw.v1 + "/balance", headers={"Authorization": f"Bearer {gw.key}"})
        now_ = r.json()["balance_usd"]
        if now_ == last:
            return str(now_)
        last = now_
        time.sleep(0.5)
    raise AssertionError("the balance did not settle")


def test_subject_naming_an_api_key_account_is_refused(hs_gateway: Gateway) -> None:
    """The issue's attack: an HS256 token whose sub is an existing account id reads and spends nothing."""
    victim = hs_gateway.account
    before = settled_balance(hs_gateway)  # earlier tests' charges may still be settling
    attack = hs256(sub=victim, org=victim)
    assert_403_not_linked(hs_gateway, attack)
    r = httpx.get(hs_gateway.v1 + "/usage/records", headers={"Authorization": f"Bearer {attack}"},
                  params={"account_id": victim})
    assert r.status_code == 403
    assert settled_balance(hs_gateway) == before
    assert victim in account_names(hs_gateway) and len(account_names(hs_gateway)) <= 2


def test_link_identity_by_admin_api_and_cli(hs_gateway: Gateway) -> None:
    from tests.conftest import perilune

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    account = httpx.post(hs_gateway.url + "/admin/accounts", headers=admin, json={"name": "linked"}).json()["id"]
    dave = hs256(sub="jwt-dave")
    assert_403_not_linked(hs_gateway, dave)
    r = httpx.post(hs_gateway.url + "/admin/identities", headers=admin,
                   json={"issuer": ISS, "subject": "jwt-dave", "account_id": account})
    assert r.status_code == 201, r.text
    ident = r.json()
    assert (ident["issuer"], ident["subject"], ident["account_id"], ident["unlinked_at"]) == (
        ISS, "jwt-dave", account, None)
    r = httpx.get(hs_gateway.v1 + "/balance", headers={"Authorization": f"Bearer {dave}"})
    assert r.status_code == 200 and r.json()["account_id"] == account
    listed = httpx.get(hs_gateway.url + "/admin/identities", headers=admin, params={"account_id": account})
    assert [i["id"] for i in listed.json()["data"]] == [ident["id"]]
    # bad input: 400 naming the param, 404 for an unknown account
    for body, param in (({"subject": "a\x00b", "account_id": account}, "subject"),
                        ({"subject": "x", "account_id": account, "issuer": "i\x00"}, "issuer"),
                        ({"account_id": account}, "subject")):
        r = httpx.post(hs_gateway.url + "/admin/identities", headers=admin, json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = httpx.post(hs_gateway.url + "/admin/identities", headers=admin,
                   json={"subject": "x", "account_id": "acct_nope"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "account_id"
    user = httpx.post(hs_gateway.url + "/admin/identities", headers={"Authorization": f"Bearer {hs_gateway.key}"},
                      json={"subject": "x", "account_id": hs_gateway.account})
    assert user.status_code == 403
    r = httpx.delete(hs_gateway.url + f"/admin/identities/{ident['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["unlinked_at"] is not None
    assert_403_not_linked(hs_gateway, dave)
    # the CLI links it again (another process; this instance sees it within a second)
    args = ("--home", str(hs_gateway.home), "--config", str(hs_gateway.config))
    out = perilune("identities", "link", account, "--subject", "jwt-dave", "--issuer", ISS, *args,
                   env=hs_gateway.env)
    assert out.stdout.startswith(f"linked {ident['id']}")
    listed_cli = json.loads(perilune("identities", "list", "--json", *args, env=hs_gateway.env).stdout)
    assert [(i["id"], i["account_id"]) for i in listed_cli] == [(ident["id"], account)]
    deadline = time.monotonic() + 5
    while httpx.get(hs_gateway.v1 + "/balance", headers={"Authorization": f"Bearer {dave}"}).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    bad = perilune("identities", "link", "acct_nope", "--subject", "x", *args, env=hs_gateway.env, check=False)
    assert bad.returncode == 1 and "no account" in bad.stderr
    assert perilune("identities", "unlink", "idn_nope", *args, env=hs_gateway.env, check=False).returncode == 1


@pytest.mark.parametrize(("make", "code", "message"), [
    (lambda: hs256(secret="a-different-secret-of-sufficient-length!", org="o"), "invalid_signature",
     MESSAGES["invalid_signature"]),
    (lambda: hs256(org="o", exp=now() - 300, iat=now() - 900), "expired_token", MESSAGES["expired_token"]),
    (lambda: hs256(sub=None, org="o"), "missing_claim", "The token is missing the required 'sub' claim."),
    (lambda: hs256(org="o", aud="x"), "invalid_audience", MESSAGES["invalid_audience"]),
    (lambda: hand_made({"alg": "none"}, claims(org="o")), "unsupported_algorithm",
     NO_ALG_NONE),
    (lambda: rs256(org="o"), "unsupported_algorithm", ALG_REFUSED),
], ids=["wrong secret", "expired", "missing claim", "wrong audience", "alg none", "RS256 without a JWKS"])
def test_hs256_rejections(hs_gateway: Gateway, make: Callable[[], str], code: str, message: str) -> None:
    assert_401(hs_gateway, make(), code, message)


# ---- configuration errors stop the start ----
@pytest.mark.parametrize(("section", "message"), [
    ('hs256_secret_env = "S"\nalgorithms = ["HS256", "none"]', "jwt.algorithms must not include 'none'"),
    ('hs256_secret_env = "PERILUNE_TEST_UNSET_SECRET"',
     "jwt.hs256_secret_env: environment variable PERILUNE_TEST_UNSET_SECRET is not set"),
    ('jwks_file = "/nonexistent/jwks.json"', "jwt.jwks_file: cannot read /nonexistent/jwks.json"),
], ids=["alg none", "secret unset", "jwks file missing"])
def test_bad_jwt_config_rejected_at_start(sim_url: str, tmp_path: Path, section: str, message: str) -> None:
    from tests.conftest import perilune

    cfg = tmp_path / "p.toml"
    cfg.write_text(jwt_config(sim_url, section))
    out = perilune("serve", "--home", str(tmp_path), "--config", str(cfg), "--port", str(free_port()),
                   check=False)
    assert out.returncode == 2, out.stderr
    assert message in " ".join(out.stderr.split())


# ---- KeyStore.ensure_account ----
def _ensure_concurrently(store: KeyStore, account_id: str) -> list[bool]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: store.ensure_account(account_id, account_id), range(16)))


def test_ensure_account_idempotent_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    store = KeyStore(db)
    assert sorted(_ensure_concurrently(store, "jwt-dave")) == [False] * 15 + [True]
    assert store.ensure_account("jwt-dave", "other name") is False
    assert [a["name"] for a in store.list_accounts() if a["id"] == "jwt-dave"] == ["jwt-dave"]
    db.dispose()


@pytest.mark.postgres
def test_ensure_account_idempotent_postgres() -> None:
    name = f"perilune_jwt_{secrets.token_hex(4)}"
    admin_url = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        db = Database(f"postgresql://postgres@127.0.0.1:5432/{name}")
        db.migrate()
        store = KeyStore(db)
        assert sorted(_ensure_concurrently(store, "jwt-erin")) == [False] * 15 + [True]
        assert [a["id"] for a in store.list_accounts()] == ["jwt-erin"]
        db.dispose()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
