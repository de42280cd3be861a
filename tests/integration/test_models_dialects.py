"""GET /v1/models per dialect: Anthropic's list shape (anthropic SDK, paging), OpenAI's Model schema,
servable models by default, a presented key always checked, HEAD / answers."""

from __future__ import annotations

import re

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.openai_schema import check

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
AV = {"anthropic-version": "2023-06-01"}


def test_anthropic_sdk_lists_models_with_limit_and_pages(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)
    page = client.models.list(limit=2)
    assert len(page.data) == 2
    for m in page.data:
        assert m.type == "model" and m.display_name and RFC3339.match(m.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert page.has_more is True and page.first_id == page.data[0].id and page.last_id == page.data[1].id
    everything = [m.id for m in client.models.list(limit=3)]  # the SDK follows after_id to the end
    enabled = [m["id"] for m in httpx.get(gateway.v1 + "/models").json()]
    assert sorted(everything) == sorted(enabled) and len(everything) == len(set(everything))
    one = client.models.retrieve("sim-gpt")
    assert one.id == "sim-gpt" and one.type == "model" and one.display_name == "Sim GPT"
    with pytest.raises(anthropic.NotFoundError) as e:
        client.models.retrieve("nope")
    assert e.value.body["type"] == "error"  # type: ignore[index]


def test_anthropic_list_paging_by_hand(gateway: Gateway) -> None:
    full = httpx.get(gateway.v1 + "/models", headers=AV, params={"limit": 1000}).json()
    ids = [m["id"] for m in full["data"]]
    assert full["has_more"] is False and full["first_id"] == ids[0] and full["last_id"] == ids[-1]
    assert [m["created_at"] for m in full["data"]] == sorted((m["created_at"] for m in full["data"]), reverse=True)
    nxt = httpx.get(gateway.v1 + "/models", headers=AV, params={"limit": 2, "after_id": ids[1]}).json()
    assert [m["id"] for m in nxt["data"]] == ids[2:4]
    prev = httpx.get(gateway.v1 + "/models", headers=AV, params={"limit": 2, "before_id": ids[3]}).json()
    assert [m["id"] for m in prev["data"]] == ids[1:3] and prev["has_more"] is True
    bad = httpx.get(gateway.v1 + "/models", headers=AV, params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["type"] == "error"
    default = httpx.get(gateway.v1 + "/models", headers=AV).json()
    assert len(default["data"]) == min(20, len(ids))


def test_openai_list_matches_the_schema_and_lists_servable_models(gateway: Gateway) -> None:
    body = httpx.get(gateway.v1 + "/models", params={"format": "openai"}).json()
    check("ListModelsResponse", body)
    assert all(isinstance(m["created"], int) and m["isEnabled"] for m in body["data"])
    everything = httpx.get(gateway.v1 + "/models", params={"format": "openai", "all": "true"}).json()
    check("ListModelsResponse", everything)
    assert len(everything["data"]) > len(body["data"])
    assert any(not m["isEnabled"] for m in everything["data"])
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert ids == {m["id"] for m in body["data"]}
    check("Model", httpx.get(gateway.v1 + "/models/sim-gpt").json())


def test_a_presented_key_is_checked_on_the_public_route(gateway: Gateway) -> None:
    assert httpx.get(gateway.v1 + "/models").status_code == 200
    assert httpx.get(gateway.v1 + "/models", headers={"Authorization": f"Bearer {gateway.key}"}).status_code == 200
    bad = httpx.get(gateway.v1 + "/models", headers={"Authorization": "Bearer pk_live_wrong"})
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"
    bad = httpx.get(gateway.v1 + "/models/sim-gpt", headers={"x-api-key": "pk_live_wrong", **AV})
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.v1, api_key="pk_live_wrong", max_retries=0).models.list()


def test_head_and_get_root(gateway: Gateway) -> None:
    assert httpx.head(gateway.url + "/").status_code == 200
    r = httpx.get(gateway.url + "/")
    assert r.status_code == 200 and r.json()["name"] == "perilune"
