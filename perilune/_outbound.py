"""Requests perilune makes on its own behalf (alert webhooks, the JWKS URL), guarded against SSRF.

A URL set by an account (a webhook) must not make the gateway talk to itself, its database, a
cloud metadata service or anything else on a private network. So, unless the operator says
otherwise in ``[outbound]``:

- only ``https://`` (``allow_http = true`` also permits ``http://``); no user info in the URL;
- the host is resolved once, and every address it resolves to must be public: loopback, private,
  link-local (which holds the 169.254.169.254 metadata service), shared (100.64/10), multicast,
  unspecified, reserved and documentation ranges are refused, IPv4-mapped and NAT64 IPv6 forms too;
- the connection goes to exactly the addresses that were checked (a pinned resolver), so a DNS
  answer that changes between the check and the connection (rebinding) cannot redirect it;
- redirects are never followed, and every request has a short total timeout.

``allow_hosts`` exempts host names (exact match) and addresses or networks (CIDR) from the address
check, e.g. an identity provider on the internal network. The check runs when a URL is set
(:func:`check`, so the caller can answer 400) and again before every request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

if TYPE_CHECKING:
    from perilune.settings import Outbound

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 3.0
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(ValueError):
    """A URL perilune will not call; the message says why (and never contains more than the host)."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    allow_http: bool = False
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, cfg: Outbound) -> OutboundPolicy:
        hosts, nets = split_allow_list(cfg.allow_hosts)
        return cls(allow_http=cfg.allow_http, allow_hosts=hosts, allow_networks=nets, timeout_s=cfg.timeout_s)

    def address_allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.allow_networks)


def split_allow_list(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Host names and networks of an ``allow_hosts`` list; raises ValueError naming a bad entry."""
    hosts: set[str] = set()
    nets: list[IPNetwork] = []
    for entry in entries:
        value = entry.strip().lower()
        if not value:
            raise ValueError("outbound.allow_hosts: empty entry")
        try:
            nets.append(ipaddress.ip_network(value, strict=False))
            continue
        except ValueError:
            pass
        if any(c in value for c in "/:@ ") or not value.replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"outbound.allow_hosts: {entry!r} is neither a host name nor an address/network")
        hosts.add(value.rstrip("."))
    return frozenset(hosts), tuple(nets)


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address behind an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def refusal(ip: IPAddress) -> str | None:
    """Why an address must not be called, or None when it is a public unicast address."""
    ip = _unwrap(ip)
    for test, what in ((ip.is_loopback, "a loopback"), (ip.is_unspecified, "an unspecified"),
                       (ip.is_link_local, "a link-local (cloud metadata)"), (ip.is_multicast, "a multicast"),
                       (ip.is_private, "a private"), (ip.is_reserved, "a reserved")):
        if test:
            return f"{what} address"
    if not ip.is_global:
        return "a non-public address"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``addresses``, already vetted) for ``host``."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...] = field(default=())


def check_syntax(url: str, policy: OutboundPolicy) -> Target:
    """The checks that need no DNS: scheme, shape, host, and the address when the host is one."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"must be a URL of at most {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise OutboundRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("is not a valid URL") from None
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        allowed = "an https:// or http://" if policy.allow_http else "an https://"
        raise OutboundRefused(f"must be {allowed} URL")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("has no host")
    port = port or (443 if parts.scheme.lower() == "https" else 80)
    if port == 0:
        raise OutboundRefused("has no valid port")
    target = Target(url, host, port)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return target
    _check_address(ip, host, policy)
    return Target(url, host, port, (str(ip),))


def _check_address(ip: IPAddress, host: str, policy: OutboundPolicy) -> None:
    if host.lower() in policy.allow_hosts or policy.address_allowed(_unwrap(ip)) or policy.address_allowed(ip):
        return
    why = refusal(ip)
    if why is not None:
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise OutboundRefused(f"points at {why} ({shown}); the operator can allow it in [outbound] allow_hosts")


async def resolve(url: str, policy: OutboundPolicy, *, strict: bool = True) -> Target:
    """Check ``url`` and resolve its host; every address must pass. With ``strict=False`` a host that
    does not resolve (yet) is accepted unresolved (used when a URL is set; sending re-checks)."""
    target = check_syntax(url, policy)
    if target.addresses:
        return target
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        if not strict:
            return target
        raise OutboundRefused(f"has a host that does not resolve ({target.host})") from None
    addresses: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        _check_address(ipaddress.ip_address(addr), target.host, policy)
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise OutboundRefused(f"has a host that does not resolve ({target.host})")
    return Target(url, target.host, target.port, tuple(addresses))


async def check(url: str, policy: OutboundPolicy) -> None:
    """Raise OutboundRefused when ``url`` may not be set (an unresolvable name is let through)."""
    await resolve(url, policy, strict=False)


class PinnedResolver(AbstractResolver):
    """Answers only for the checked host, with the checked addresses: no second DNS lookup."""

    def __init__(self, target: Target) -> None:
        self.target = target

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host.rstrip(".").lower() != self.target.host.lower():
            raise OSError(f"refusing to resolve {host}: not the checked host")
        out: list[ResolveResult] = []
        for addr in self.target.addresses:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            out.append(ResolveResult(hostname=host, host=addr, port=port or self.target.port, family=fam,
                                     proto=0, flags=socket.AI_NUMERICHOST))
        return out

    async def close(self) -> None:
        return None


def _session(target: Target, policy: OutboundPolicy) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(target), use_dns_cache=False, limit=2,
                                     force_close=True)
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s, connect=min(policy.timeout_s, 3.0))
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                 auto_decompress=True)


async def post(url: str, body: bytes, policy: OutboundPolicy,
               headers: Mapping[str, str] | None = None) -> int:
    """POST ``body``; the HTTP status (a redirect is returned as its 3xx status, never followed).
    Raises OutboundRefused, aiohttp.ClientError, TimeoutError or OSError."""
    target = await resolve(url, policy)
    async with _session(target, policy) as s, s.post(url, data=body, headers=dict(headers or {}),
                                                     allow_redirects=False) as r:
        return r.status


async def get(url: str, policy: OutboundPolicy, *, max_bytes: int,
              headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """GET at most ``max_bytes`` of a body: (status, body). Redirects are not followed."""
    target = await resolve(url, policy)
    async with _session(target, policy) as s, s.get(url, headers=dict(headers or {}),
                                                    allow_redirects=False) as r:
        data = bytearray()
        async for chunk in r.content.iter_chunked(65536):
            data += chunk
            if len(data) > max_bytes:
                raise OutboundRefused(f"answered with more than {max_bytes} bytes")
        return r.status, bytes(data)
