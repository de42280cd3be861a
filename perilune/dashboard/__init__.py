"""The dashboard at ``/dashboard``: server-rendered pages (Jinja2), local static files, no build step.

Pages: Logs, Log detail, Analytics, Models, Keys, Balance. Sign in with an account key (that
account's data) or an admin key (every account). See :mod:`perilune.dashboard.session`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from perilune.dashboard import balance, manage, views
from perilune.dashboard.page import SECURITY_HEADERS

STATIC = Path(__file__).resolve().parent / "static"


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/dashboard", manage.root)
    r.add_get("/dashboard/", manage.root)
    r.add_get("/dashboard/login", manage.login_form)
    r.add_post("/dashboard/login", manage.login)
    r.add_post("/dashboard/logout", manage.logout)
    r.add_get("/dashboard/logs", views.logs)
    r.add_get("/dashboard/logs/{record_id}", views.log_detail)
    r.add_get("/dashboard/analytics", views.analytics)
    r.add_get("/dashboard/models", manage.models)
    r.add_get("/dashboard/keys", manage.keys)
    r.add_post("/dashboard/keys", manage.create_key)
    r.add_post("/dashboard/keys/{key_id}/revoke", manage.revoke_key)
    r.add_get("/dashboard/balance", balance.balance_page)
    r.add_post("/dashboard/balance/alerts", manage.balance_alerts)
    r.add_get("/dashboard/static/{filename}", static_file)


_TYPES = {".css": "text/css", ".js": "text/javascript"}
_FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}  # the shipped files, and only those


async def static_file(request: web.Request) -> web.StreamResponse:
    """The dashboard's own CSS and JS, by exact name (no paths, no directory listing; any other name
    is a 404 however odd, where aiohttp's static route answered 500 to an over-long name)."""
    path = _FILES.get(request.match_info["filename"])
    if path is None:
        return web.Response(status=404, text="Not found", headers=SECURITY_HEADERS)
    return web.FileResponse(path, headers={**SECURITY_HEADERS, "Content-Type": _TYPES[path.suffix] + "; charset=utf-8",
                                           "Cache-Control": "public, max-age=300"})
