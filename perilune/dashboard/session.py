"""Dashboard sign-in: a random server-side session, never the key itself, in an HttpOnly cookie.

Signing in posts a key once; the server checks it, creates a session (a random 256-bit id, of which
only the SHA-256 is stored, beside the SHA-256 of the key and an expiry of ``dashboard_session_s``)
and sets the id in the ``perilune_session`` cookie: HttpOnly (no script can read it),
SameSite=Strict (never sent by another site's requests), Path=/dashboard, and Secure when the page
was served over HTTPS (or, with ``trust_proxy_headers``, the proxy in front says
``X-Forwarded-Proto: https``). Every page looks the session up and re-checks its key through the same
in-memory key cache as the API, so a revoked key ends its sessions within ``key_refresh_s``; signing
out deletes the session on the server, so a copied cookie stops working at once. Keys never appear in
URLs (forms use POST; redirects carry paths only) or in logs.

Form posts also carry a CSRF token derived from the session id (and must come from this origin when
the browser says where it came from), on top of SameSite=Strict.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from perilune.errors import PeriluneError
from perilune.gateway.auth import Principal
from perilune.store.keys import hash_key
from perilune.store.sessions import SessionStore

if TYPE_CHECKING:
    from perilune.app import Services

COOKIE = "perilune_session"
PATH = "/dashboard"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{20,100}")


def session_id_of(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value and _SESSION_ID.fullmatch(value) else None


async def principal_of(request: web.Request, services: Services) -> Principal | None:
    """The principal of the signed-in session, or None (no session, expired, ended, or its key revoked)."""
    sid = session_id_of(request)
    if sid is None:
        return None
    try:
        key_hash = await asyncio.to_thread(SessionStore(services.db).key_hash_of, sid)
        if key_hash is None:
            return None
        return await services.keys.authenticate_hash(key_hash)
    except PeriluneError:
        return None


async def sign_in(services: Services, key: str) -> tuple[Principal, str] | None:
    """Check an API key (or the admin key) and open a session for it: (principal, session id)."""
    key_hash = hash_key(key)
    try:
        p = await services.keys.authenticate_hash(key_hash)
    except PeriluneError:
        return None
    sid = await asyncio.to_thread(SessionStore(services.db).create, key_hash,
                                  services.settings.dashboard_session_s)
    return p, sid


async def sign_out(services: Services, request: web.Request) -> None:
    sid = session_id_of(request)
    if sid is not None:
        await asyncio.to_thread(SessionStore(services.db).delete, sid)


def is_https(request: web.Request, trust_proxy: bool = False) -> bool:
    if request.secure:
        return True
    return trust_proxy and request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


def set_session(resp: web.StreamResponse, request: web.Request, session_id: str, max_age_s: float,
                trust_proxy: bool = False) -> None:
    resp.set_cookie(COOKIE, session_id, max_age=int(max_age_s), path=PATH, httponly=True, samesite="Strict",
                    secure=is_https(request, trust_proxy))


def clear_session(resp: web.StreamResponse, request: web.Request) -> None:
    resp.del_cookie(COOKIE, path=PATH)


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"perilune-dashboard-csrf", hashlib.sha256).hexdigest()[:32]


def same_origin(request: web.Request) -> bool:
    """False when the browser says the form came from another origin."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return origin != "null"
    return urlsplit(origin).netloc == request.host


def check_csrf(request: web.Request, form_token: str | None) -> bool:
    sid = session_id_of(request)
    if not sid or not form_token or not same_origin(request):
        return False
    return hmac.compare_digest(csrf_token(sid), form_token)
