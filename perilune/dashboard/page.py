"""What every dashboard page shares: sign-in check, request id, templates, errors, security headers."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from perilune.accounting.pricing import from_pico
from perilune.api.common import SERVICES, new_request_id
from perilune.dashboard import session
from perilune.errors import PeriluneError
from perilune.gateway.auth import Principal
from perilune.logs import REQUEST_ID
from perilune.schema.text import check_params

if TYPE_CHECKING:
    from perilune.app import Services

log = logging.getLogger("perilune.dashboard")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = (("logs", "Logs"), ("analytics", "Analytics"), ("models", "Models"), ("keys", "Keys"),
       ("balance", "Balance"))


def usd(pico: int | None) -> str:
    """Dollars, exact to the pico-dollar: at least cents, every significant digit after them
    ($9.834521, $1,000.00, $0.000006, -$1.50); never rounded, never 5.7e-05."""
    if pico is None:
        return "—"
    v = from_pico(int(pico))
    sign, a = ("-" if v < 0 else ""), abs(v)
    exponent = a.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{sign}${a:,.{places}f}"


def usd_short(pico: int | None, digits: int = 3) -> str:
    """A rounded amount for chart axes and tooltips only ($0.0012, $1.25)."""
    if pico is None:
        return "—"
    v = from_pico(int(pico))
    if v == 0:
        return "$0"
    sign, a = ("-" if v < 0 else ""), abs(v)
    if a >= 1:
        return f"{sign}${a:,.2f}"
    q = Decimal(1).scaleb(a.adjusted() - digits + 1)
    return f"{sign}${a.quantize(q).normalize():f}"


def plain_usd(pico: int) -> str:
    """An amount as a plain decimal for a form field (``1000``, ``0.5``)."""
    return f"{from_pico(pico).normalize():f}"


def usdf(v: str | float | int | None) -> str:
    """A USD amount in the API's shape (a decimal string), shown exactly."""
    if v is None:
        return "—"
    return usd(int((Decimal(str(v)) * 10**12).to_integral_value()))


def price(v: float | int | str | None) -> str:
    """A catalog price (USD) exactly as the catalog has it ($0.15, $0.000005), or — when there is none."""
    if v is None:
        return "—"
    d = Decimal(str(v))
    return f"${d.normalize():f}" if d != d.to_integral_value() else f"${int(d)}"


def ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v / 1000:.2f} s" if v >= 10_000 else f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"


def num(v: float | int | None) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


def compact(v: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def utc(t: float | None, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    """A time with its zone (the dashboard shows every time in UTC and says so)."""
    return "—" if t is None else datetime.fromtimestamp(t, UTC).strftime(fmt)


def iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("perilune.dashboard", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(usd=usd, usdf=usdf, price=price, plain_usd=plain_usd, ms=ms, num=num, utc=utc, iso=iso,
                       compact=compact)
    env.globals.update(nav=NAV, urlencode=urlencode, quote=quote)
    return env


@dataclass(slots=True)
class Page:
    request: web.Request
    services: Services
    principal: Principal | None
    request_id: str

    @property
    def is_admin(self) -> bool:
        return self.principal is not None and self.principal.is_admin

    @property
    def account_id(self) -> str | None:
        """Whose data the page shows: the key's account; for an admin, the one picked (or all)."""
        if self.principal is None:
            return None
        if self.is_admin:
            return self.request.query.get("account_id") or None
        return self.principal.account_id

    def render(self, template: str, *, status: int = 200, active: str = "", **values: Any) -> web.Response:
        sid = session.session_id_of(self.request)
        html = environment().get_template(template).render(
            page=self, active=active, csrf=session.csrf_token(sid) if sid else "", **values)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                            headers={"x-request-id": self.request_id})

    async def form(self) -> dict[str, str]:
        data = await self.request.post()
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        check_params(form)  # no NUL reaches the database
        return form


def redirect(location: str) -> web.Response:
    """303 to a path on this site (never a key in it)."""
    return web.Response(status=303, headers={"Location": location})


PageHandler = Callable[[Page], Awaitable[web.StreamResponse]]


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(*, signed_in: bool = True) -> Callable[[PageHandler], Route]:
    def wrap(fn: PageHandler) -> Route:
        async def handler(request: web.Request) -> web.StreamResponse:
            services = request.app[SERVICES]
            rid = new_request_id()
            REQUEST_ID.set(rid)
            started = time.perf_counter()
            p = await session.principal_of(request, services)
            pg = Page(request, services, p, rid)
            try:
                check_params(request.query, request.match_info)
                if signed_in and p is None:
                    resp: web.StreamResponse = redirect("/dashboard/login?"
                                                        + urlencode({"next": request.path}))
                else:
                    resp = await fn(pg)
            except PeriluneError as e:
                resp = pg.render("error.html", status=e.status_code, message=e.message)
            except Exception:
                log.exception("dashboard page %s failed", request.path)
                resp = pg.render("error.html", status=500, message="Something went wrong; the request id "
                                 f"is {rid}.")
            resp.headers.update(SECURITY_HEADERS)
            resp.headers.setdefault("x-request-id", rid)
            log.debug("dashboard %s %s %d in %.1f ms", request.method, request.path, resp.status,
                      (time.perf_counter() - started) * 1000)
            return resp

        handler.__name__ = fn.__name__
        return handler

    return wrap
