"""GET /v1/models, the OpenAPI document, keys (CLI + admin API), revocation and expiry."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import ADMIN_KEY, Gateway, StartGateway, perilune

FIELDS = {"id", "modelId", "permaslug", "name", "provider", "parameters", "pricePerMillionTokens",
          "supportedParameters", "inputModalities", "outputModalities", "description", "freeConfig", "isEnabled",
          "supportReasoning", "maxCompletionTokens", "releaseDate", "createdAt", "updatedAt"}
MODELS_JSON = Path(__file__).resolve().parents[2] / "perilune" / "data" / "models.json"


def test_models_top_level_array_without_key(gateway: Gateway) -> None:
    r = httpx.get(gateway.v1 + "/models", params={"all": "true"})
    assert r.status_code == 200
    models = r.json()
    assert isinstance(models, list) and len(models) > 40
    for m in models:
        assert set(m) >= FIELDS, FIELDS - set(m)
        assert set(m["parameters"]) == {"context", "max_output_tokens"}
        assert {"input", "output", "discountPercentage"} <= set(m["pricePerMillionTokens"])
        assert set(m["freeConfig"]) == {"maxTokens", "isPremium"}
    by_id = {m["id"]: m for m in models}
    sim = by_id["sim-gpt"]
    assert sim["isEnabled"] is True and sim["provider"] == "sim"
    assert sim["pricePerMillionTokens"] == {"input": 1, "output": 2, "discountPercentage": 0, "cacheRead": 0.5}
    # a model nobody configured is listed but not enabled
    shipped = json.loads(MODELS_JSON.read_text())
    anthropic_only = next(m["id"] for m in shipped["models"] if m["providers"] == ["anthropic"])
    assert by_id[anthropic_only]["isEnabled"] is False


def test_models_prices_match_catalog_exactly(gateway: Gateway) -> None:
    shipped = {m["id"]: m for m in json.loads(MODELS_JSON.read_text())["models"]}
    for m in httpx.get(gateway.v1 + "/models", params={"all": "true"}).json():
        src = shipped[m["id"]]["price"]
        for ours, theirs in (("input", "input"), ("output", "output"), ("cacheRead", "cache_read"),
                             ("cacheWrite", "cache_write")):
            if src.get(theirs) is None:
                assert m["pricePerMillionTokens"].get(ours) is None
            else:
                assert Decimal(str(m["pricePerMillionTokens"][ours])) == Decimal(src[theirs])


def test_models_modality_filters(gateway: Gateway) -> None:
    img = httpx.get(gateway.v1 + "/models", params={"input": "text,image"}).json()
    assert img and all({"text", "image"} <= set(m["inputModalities"]) for m in img)
    emb = httpx.get(gateway.v1 + "/models", params={"output": "embedding"}).json()
    assert emb and all(m["outputModalities"] == ["embedding"] for m in emb)
    assert "sim-embed" in {m["id"] for m in emb}
    bad = httpx.get(gateway.v1 + "/models", params={"input": "smell"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


def test_models_with_openai_sdk(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key)
    ids = [m.id for m in client.models.list()]
    assert "sim-gpt" in ids and "gpt-4o-mini" in ids
    m = client.models.retrieve("sim-gpt")
    assert m.id == "sim-gpt" and (m.model_extra or {})["pricePerMillionTokens"]["input"] == 1
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_models_can_require_a_key(start_gateway: StartGateway) -> None:
    gw = start_gateway('simulator = "never"\nmodels_require_key = true\n'
                       '[[providers]]\nname = "sim"\nbase_url = "{sim_url}/v1"\n')
    assert httpx.get(gw.v1 + "/models").status_code == 401
    assert httpx.get(gw.v1 + "/models", headers={"Authorization": f"Bearer {gw.key}"}).status_code == 200


def test_catalog_overrides_and_discounts(start_gateway: StartGateway) -> None:
    gw = start_gateway('''
simulator = "never"
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
[models."sim-gpt"]
discount_percentage = 25
price = { output = "4.00" }
[models."house-model"]
providers = ["sim"]
name = "House model"
price = { input = "0.5", output = "1.5" }
''')
    models = {m["id"]: m for m in httpx.get(gw.v1 + "/models").json()}
    assert models["sim-gpt"]["pricePerMillionTokens"]["output"] == 4
    assert models["sim-gpt"]["pricePerMillionTokens"]["discountPercentage"] == 25
    assert models["house-model"]["isEnabled"] is True
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key)
    r = client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
    u = r.usage.model_dump()  # type: ignore[union-attr]
    m = Decimal(1_000_000)
    assert Decimal(str(u["output_cost_usd"])) == u["completion_tokens"] * Decimal("4.00") * Decimal("0.75") / m
    assert Decimal(str(u["input_cost_usd"])) == u["prompt_tokens"] * Decimal("1.00") * Decimal("0.75") / m
    h = client.chat.completions.create(model="house-model", messages=[{"role": "user", "content": "hi"}])
    assert Decimal(str(h.usage.model_dump()["total_cost_usd"])) == (  # type: ignore[union-attr]
        h.usage.prompt_tokens * Decimal("0.5") + h.usage.completion_tokens * Decimal("1.5")) / m  # type: ignore[union-attr]


def test_provider_without_key_is_named(start_gateway: StartGateway) -> None:
    gw = start_gateway('''
simulator = "never"
[[providers]]
name = "sim"
base_url = "{sim_url}/v1"
[[providers]]
name = "groq"
base_url = "{sim_url}/v1"
api_key_env = "PERILUNE_TEST_UNSET_GROQ_KEY"
[models."house-llama"]
providers = ["groq"]
price = { input = "0.1", output = "0.1" }
''')
    r = httpx.post(gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {gw.key}"},
                   json={"model": "house-llama", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "provider_not_configured" and err["param"] == "model"
    assert "PERILUNE_TEST_UNSET_GROQ_KEY" in err["message"] and "groq" in err["message"]


def test_openapi_document_is_valid(gateway: Gateway) -> None:
    doc = httpx.get(gateway.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"} <= set(doc["paths"])
    schema = doc["components"]["schemas"]["ChatCompletionRequest"]
    resolver_doc = {"components": doc["components"], **schema}
    jsonschema.validate({"model": "m", "messages": [{"role": "user", "content": "x"}]}, resolver_doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": "m"}, resolver_doc)


def test_health(gateway: Gateway) -> None:
    r = httpx.get(gateway.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def admin(gw: Gateway, method: str, path: str, body: object = None, key: str = ADMIN_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, gw.url + path, json=body, headers=headers)


def test_admin_api_needs_admin_key(gateway: Gateway) -> None:
    assert admin(gateway, "GET", "/admin/keys", key="").status_code == 401
    r = admin(gateway, "GET", "/admin/keys", key=gateway.key)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert admin(gateway, "GET", "/admin/keys").status_code == 200


def test_key_lifecycle_via_admin_api(gateway: Gateway) -> None:
    acct = admin(gateway, "POST", "/admin/accounts", {"name": "team-a"}).json()
    created = admin(gateway, "POST", "/admin/keys", {"account_id": acct["id"], "name": "ci"})
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith("pk_live_") and len(secret) >= 8 + 32
    assert body["name"] == "ci" and body["account_id"] == acct["id"]
    listed = admin(gateway, "GET", f"/admin/keys?account_id={acct['id']}").json()["data"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert secret not in json.dumps(listed)  # the secret is never shown again
    client = openai.OpenAI(base_url=gateway.v1, api_key=secret, max_retries=0)
    with pytest.raises(openai.APIStatusError) as no_money:  # a new account has no balance yet
        client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
    assert no_money.value.status_code == 402
    assert admin(gateway, "POST", f"/admin/accounts/{acct['id']}/topup", {"amount_usd": "1"}).status_code == 201
    client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
    assert admin(gateway, "DELETE", f"/admin/keys/{body['id']}").json()["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "hi"}])
    assert admin(gateway, "POST", "/admin/keys", {"account_id": "acct_nope"}).status_code == 404
    assert admin(gateway, "POST", "/admin/keys", {"expires_at": 1}).status_code == 400
    assert admin(gateway, "POST", "/admin/keys", {"bogus": 1}).status_code == 400


def test_cli_revocation_takes_effect_within_a_second(gateway: Gateway) -> None:
    secret = gateway.new_key("--name", "short-lived")
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers).status_code == 200
    key_id = next(k["id"] for k in admin(gateway, "GET", "/admin/keys").json()["data"] if k["name"] == "short-lived")
    perilune("keys", "revoke", key_id, "--home", str(gateway.home), "--config", str(gateway.config),
             env=gateway.env)
    revoked_at = time.monotonic()
    while httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "revocation not effective within a second"
        time.sleep(0.05)


def test_key_expiry(gateway: Gateway) -> None:
    r = admin(gateway, "POST", "/admin/keys", {"name": "brief", "expires_in_s": 1.0}).json()
    headers = {"Authorization": f"Bearer {r['key']}"}
    body = {"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers).status_code == 200
    time.sleep(1.1)
    r2 = httpx.post(gateway.v1 + "/chat/completions", json=body, headers=headers)
    assert r2.status_code == 401 and r2.json()["error"]["code"] == "expired_api_key"


def test_keys_stored_hashed(gateway: Gateway) -> None:
    import sqlite3

    db = sqlite3.connect(gateway.home / "perilune.db")
    hashes = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
    db.close()
    assert gateway.key not in hashes and all(len(h) == 64 for h in hashes)
    assert gateway.key.encode() not in (gateway.home / "perilune.db").read_bytes()
