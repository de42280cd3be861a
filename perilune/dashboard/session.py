"""Dashboard sign-in: an account key or the admin key, kept in an HttpOnly cookie.

The key is posted once from the sign-in form and then lives only in the ``perilune_dashboard``
cookie: HttpOnly (no script can read it), SameSite=Strict (never sent by another site's requests),
Path=/dashboard, Secure when the request came over HTTPS. Every page authenticates it through the
same in-memory key cache as the API, so a revoked key signs out within ``key_refresh_s``. Keys never
appear in URLs (forms use POST; redirects carry paths only) or in logs.

Form posts also carry a CSRF token derived from the key (and must come from this origin when the
browser says where it came from), on top of SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web

from perilune.errors import PeriluneError
from perilune.gateway.auth import Principal

COOKIE = "perilune_dashboard"
PATH = "/dashboard"


def key_of(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value or None


async def principal_of(request: web.Request, keys: object) -> Principal | None:
    """The principal of the signed-in key, or None (no cookie, or a key no longer valid)."""
    key = key_of(request)
    if not key:
        return None
    try:
        p: Principal = await keys.authenticate({"Authorization": f"Bearer {key}"})  # type: ignore[attr-defined]
    except PeriluneError:
        return None
    return p


def is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_session(resp: web.StreamResponse, request: web.Request, key: str, max_age_s: float) -> None:
    resp.set_cookie(COOKIE, key, max_age=int(max_age_s), path=PATH, httponly=True, samesite="Strict",
                    secure=is_https(request))


def clear_session(resp: web.StreamResponse, request: web.Request) -> None:
    resp.del_cookie(COOKIE, path=PATH)


def csrf_token(key: str) -> str:
    return hmac.new(key.encode(), b"perilune-dashboard-csrf", hashlib.sha256).hexdigest()[:32]


def same_origin(request: web.Request) -> bool:
    """False when the browser says the form came from another origin."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return origin != "null"
    return urlsplit(origin).netloc == request.host


def check_csrf(request: web.Request, form_token: str | None) -> bool:
    key = key_of(request)
    if not key or not form_token or not same_origin(request):
        return False
    return hmac.compare_digest(csrf_token(key), form_token)
