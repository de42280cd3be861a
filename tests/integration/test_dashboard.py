"""The dashboard over HTTP: sign-in keeps the key in an HttpOnly cookie (never in a URL), pages are
scoped to the signed-in account, forms need a CSRF token, keys are created and revoked, security
headers, static files."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.conftest import Gateway, StartGateway, perilune

MSG = [{"role": "user", "content": "Describe the harbour at dawn"}]


@pytest.fixture(scope="module")
def gw(start_gateway: StartGateway) -> Gateway:
    return start_gateway(env={"PERILUNE_USAGE_FLUSH_S": "0.05"})


def signed_in(gw: Gateway, key: str) -> httpx.Client:
    c = httpx.Client(base_url=gw.url, timeout=30)
    r = c.post("/dashboard/login", data={"key": key, "next": "/dashboard/logs"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/logs"
    return c


def request_id(gw: Gateway, key: str, app: str, **extra: object) -> str:
    r = httpx.post(gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {key}", "X-App-ID": app},
                   json={"model": "sim-gpt", "messages": MSG, **extra}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def wait_listed(c: httpx.Client, rid: str, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        html = c.get("/dashboard/logs").text
        if rid in html:
            return html
        assert time.monotonic() < deadline, f"{rid} not on the logs page"
        time.sleep(0.1)


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no csrf token on the page"
    return m.group(1)


def test_sign_in_keeps_the_key_in_an_httponly_cookie(gw: Gateway) -> None:
    r = httpx.get(gw.url + "/dashboard/logs")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Flogs"
    bad = httpx.post(gw.url + "/dashboard/login", data={"key": "pk_live_nope", "next": "/dashboard/logs"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers and "pk_live_nope" not in bad.text
    r = httpx.post(gw.url + "/dashboard/login", data={"key": gw.key, "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/logs"  # no open redirect
    cookie = r.headers["set-cookie"]
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="):
        assert attr in cookie
    assert "Secure" not in cookie  # plain http here
    assert gw.key not in cookie and cookie.startswith("perilune_session=")  # a session id, not the key
    assert gw.key not in r.headers["location"]
    c = signed_in(gw, gw.key)
    page = c.get("/dashboard/logs")
    assert page.status_code == 200 and gw.key not in page.text
    for name, value in (("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"),
                        ("cache-control", "no-store")):
        assert page.headers[name] == value
    assert "script-src 'self'" in page.headers["content-security-policy"]
    stolen = c.cookies["perilune_session"]
    out = c.post("/dashboard/logout")
    assert out.status_code == 303 and 'perilune_session=""' in out.headers["set-cookie"]
    assert c.get("/dashboard/logs").status_code == 303
    # logout ended the session on the server: a copy of the cookie no longer signs in
    replay = httpx.get(gw.url + "/dashboard/logs", cookies={"perilune_session": stolen})
    assert replay.status_code == 303 and replay.headers["location"].startswith("/dashboard/login")
    # the raw key as a cookie (what older versions stored) signs nothing in either
    raw = httpx.get(gw.url + "/dashboard/logs", cookies={"perilune_session": gw.key})
    assert raw.status_code == 303
    for junk in ("x" * 500, "a%00b", "ab;cd", ""):
        assert httpx.get(gw.url + "/dashboard/logs", cookies={"perilune_session": junk}).status_code == 303
    css = httpx.get(gw.url + "/dashboard/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_pages_are_scoped_to_the_signed_in_account(gw: Gateway) -> None:
    acct = httpx.post(gw.url + "/admin/accounts", headers={"Authorization": f"Bearer {gw.admin_key}"},
                      json={"name": "neighbour"}).json()["id"]
    other_key = httpx.post(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {gw.admin_key}"},
                           json={"account_id": acct, "name": "n"}).json()["key"]
    perilune("accounts", "topup", acct, "5", "--reason", "t", "--home", str(gw.home), "--config", str(gw.config),
             env=gw.env)
    mine = request_id(gw, gw.key, "mine-app", observability=True)
    theirs = request_id(gw, other_key, "their-app")
    me, them, admin = signed_in(gw, gw.key), signed_in(gw, other_key), signed_in(gw, gw.admin_key)
    html = wait_listed(me, mine)
    assert theirs not in html and "their-app" not in html
    html = wait_listed(them, theirs)
    assert mine not in html
    assert them.get(f"/dashboard/logs/{mine}").status_code == 404
    detail = me.get(f"/dashboard/logs/{mine}")
    assert detail.status_code == 200
    assert "Describe the harbour at dawn" in detail.text and "Tokens per second" in detail.text
    both = wait_listed(admin, theirs)
    assert mine in both
    assert admin.get(f"/dashboard/logs/{theirs}").status_code == 200
    filtered = me.get("/dashboard/logs", params={"app": "nothing-here"}).text
    assert mine not in filtered and "No requests match" in filtered
    for path in ("/dashboard/analytics", "/dashboard/models?input=image", "/dashboard/keys", "/dashboard/balance"):
        assert me.get(path).status_code == 200, path
    analytics = me.get("/dashboard/analytics", params={"range": "24h", "by": "model"}).text
    assert analytics.count('<svg class="chart"') == 3 and "<rect" in analytics
    balance = me.get("/dashboard/balance").text
    assert "topup" in balance and "Low-balance alerts" in balance
    saved = me.post("/dashboard/balance/alerts", data={"csrf": csrf(balance), "thresholds": "1000, 2.5",
                                                        "webhook_url": "https://hooks.example/perilune"})
    assert saved.status_code == 200 and "Alert settings saved." in saved.text
    assert 'value="1000, 2.5"' in saved.text and "https://hooks.example/perilune" in saved.text
    bad = me.post("/dashboard/balance/alerts", data={"csrf": csrf(balance), "thresholds": "lots"})
    assert bad.status_code == 400


def test_keys_are_created_and_revoked_with_csrf(gw: Gateway) -> None:
    c = signed_in(gw, gw.key)
    page = c.get("/dashboard/keys").text
    token = csrf(page)
    assert c.post("/dashboard/keys", data={"name": "no token"}).status_code == 403
    foreign = c.post("/dashboard/keys", data={"name": "x", "csrf": token},
                     headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    made = c.post("/dashboard/keys", data={"name": "from the dashboard", "csrf": token,
                                           "role": "admin", "account_id": "acct_other"})
    assert made.status_code == 200
    secret = re.search(r'id="secret" readonly value="(pk_live_[0-9A-Za-z]+)"', made.text)
    assert secret, made.text
    new_key = secret.group(1)
    models = httpx.get(gw.v1 + "/usage/records", headers={"Authorization": f"Bearer {new_key}"})
    assert models.status_code == 200
    listed = httpx.get(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {gw.admin_key}"}).json()["data"]
    rec = next(k for k in listed if k["name"] == "from the dashboard")
    assert rec["role"] == "user" and rec["account_id"] == gw.account  # an account key cannot do more
    assert new_key not in c.get("/dashboard/keys").text  # shown once
    r = c.post(f"/dashboard/keys/{rec['id']}/revoke", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == f"/dashboard/keys?revoked={rec['id']}"
    deadline = time.monotonic() + 5
    while httpx.post(gw.v1 + "/chat/completions", headers={"Authorization": f"Bearer {new_key}"},
                     json={"model": "sim-gpt", "messages": MSG}).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # another account's key cannot be revoked from here
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    other = httpx.post(gw.url + "/admin/accounts", headers=admin, json={"name": "elsewhere"}).json()["id"]
    theirs = httpx.post(gw.url + "/admin/keys", headers=admin, json={"account_id": other}).json()
    assert c.post(f"/dashboard/keys/{theirs['id']}/revoke", data={"csrf": token}).status_code == 404
    still = httpx.get(gw.v1 + "/usage/records", headers={"Authorization": f"Bearer {theirs['key']}"})
    assert still.status_code == 200


def _db_sessions(gw: Gateway) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(gw.home / "perilune.db") as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT id_hash, key_hash FROM dashboard_sessions")]


def test_sessions_are_stored_hashed_and_end_with_their_key(gw: Gateway) -> None:
    import hashlib

    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    made = httpx.post(gw.url + "/admin/keys", headers=admin, json={"account_id": gw.account, "name": "s"}).json()
    c = signed_in(gw, made["key"])
    sid = c.cookies["perilune_session"]
    stored = _db_sessions(gw)
    assert (hashlib.sha256(sid.encode()).hexdigest(), hashlib.sha256(made["key"].encode()).hexdigest()) in stored
    assert all(sid not in row and made["key"] not in row for row in stored)
    assert c.get("/dashboard/keys").status_code == 200
    httpx.delete(gw.url + f"/admin/keys/{made['id']}", headers=admin)
    deadline = time.monotonic() + 5
    while c.get("/dashboard/keys").status_code != 303:  # a revoked key ends its sessions
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_user_key_sees_and_manages_only_user_keys_of_its_account(gw: Gateway) -> None:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    boss = httpx.post(gw.url + "/admin/keys", headers=admin,
                      json={"account_id": gw.account, "name": "account admin", "role": "admin"}).json()
    peer = httpx.post(gw.url + "/admin/keys", headers=admin, json={"account_id": gw.account, "name": "peer"}).json()
    c = signed_in(gw, gw.key)
    page = c.get("/dashboard/keys").text
    assert boss["id"] not in page and "account admin" not in page and peer["id"] in page
    assert c.post(f"/dashboard/keys/{boss['id']}/revoke", data={"csrf": csrf(page)}).status_code == 404
    listed = httpx.get(gw.url + "/admin/keys", headers=admin, params={"account_id": gw.account}).json()["data"]
    assert next(k for k in listed if k["id"] == boss["id"])["revoked_at"] is None
    assert httpx.get(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {boss['key']}"}).status_code == 200
    # an admin key sees and manages every key
    a = signed_in(gw, gw.admin_key)
    apage = a.get("/dashboard/keys").text
    assert boss["id"] in apage and peer["id"] in apage
    r = a.post(f"/dashboard/keys/{peer['id']}/revoke", data={"csrf": csrf(apage)})
    assert r.status_code == 303


def test_secure_cookie_behind_a_trusted_proxy_only(start_gateway: StartGateway, gw: Gateway) -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    r = httpx.post(gw.url + "/dashboard/login", data={"key": gw.key, "next": "/dashboard/logs"}, headers=forwarded)
    assert r.status_code == 303 and "Secure" not in r.headers["set-cookie"]  # proxy headers not trusted
    trusted = start_gateway(env={"PERILUNE_TRUST_PROXY_HEADERS": "true"})
    r = httpx.post(trusted.url + "/dashboard/login", data={"key": trusted.key, "next": "/dashboard/logs"},
                   headers=forwarded)
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    r = httpx.post(trusted.url + "/dashboard/login", data={"key": trusted.key, "next": "/dashboard/logs"})
    assert r.status_code == 303 and "Secure" not in r.headers["set-cookie"]
