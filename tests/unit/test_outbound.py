"""The outbound guard (perilune._outbound): what may be called, checked before DNS, after DNS, and
pinned for the connection. DNS answers are faked here by replacing the loop's getaddrinfo."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from perilune._outbound import (
    OutboundPolicy,
    OutboundRefused,
    PinnedResolver,
    Target,
    check,
    check_syntax,
    refusal,
    resolve,
    split_allow_list,
)
from perilune.settings import SettingsError, load_settings

STRICT = OutboundPolicy()


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "192.0.2.10", "240.0.0.1",
    "255.255.255.255",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None
    with pytest.raises(OutboundRefused):
        check_syntax(f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook", STRICT)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
    host = f"[{address}]" if ":" in address else address
    assert check_syntax(f"https://{host}:8443/x", STRICT).addresses == (address,)


@pytest.mark.parametrize(("url", "why"), [
    ("http://8.8.8.8/hook", "https://"),
    ("ftp://8.8.8.8/hook", "https://"),
    ("https://user:pw@8.8.8.8/hook", "user name"),
    ("https:///nohost", "no host"),
    ("https://8.8.8.8:99999/x", "not a valid URL"),
    ("https://8.8.8.8/a b", "spaces"),
    ("https://8.8.8.8/\x00", "control"),
    ("https://" + "a" * 3000 + ".com/", "at most"),
    ("", "at most"),
])
def test_bad_urls(url: str, why: str) -> None:
    with pytest.raises(OutboundRefused) as info:
        check_syntax(url, STRICT)
    assert why in str(info.value)


def test_http_only_when_allowed_and_allow_list() -> None:
    loose = OutboundPolicy(allow_http=True)
    assert check_syntax("http://8.8.8.8/", loose).port == 80
    with pytest.raises(OutboundRefused):
        check_syntax("http://127.0.0.1:9/", loose)  # http allowed, loopback still not
    hosts, nets = split_allow_list(["127.0.0.1", "10.0.0.0/8", "idp.internal"])
    allowed = OutboundPolicy(allow_http=True, allow_hosts=hosts, allow_networks=nets)
    assert check_syntax("http://127.0.0.1:9/", allowed).addresses == ("127.0.0.1",)
    assert check_syntax("http://10.2.3.4/", allowed).addresses == ("10.2.3.4",)
    with pytest.raises(OutboundRefused):
        check_syntax("http://192.168.0.1/", allowed)
    with pytest.raises(ValueError):
        split_allow_list(["not a host!"])


def test_settings_section(tmp_path: Any) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[outbound]\nallow_http = true\nallow_hosts = ["10.0.0.0/8", "idp.internal"]\ntimeout_s = 2\n')
    s = load_settings(cfg, environ={})
    p = OutboundPolicy.from_settings(s.outbound)
    assert p.allow_http and p.allow_hosts == {"idp.internal"} and p.timeout_s == 2
    assert load_settings(None, environ={}).outbound.allow_http is False
    cfg.write_text('[outbound]\nallow_hosts = ["bad host!"]\n')
    with pytest.raises(SettingsError, match="allow_hosts"):
        load_settings(cfg, environ={})


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    asked: list[str] = []
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, *args: Any, **kw: Any) -> list[Any]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return asked


async def test_names_are_checked_after_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"hooks.example": ["93.184.216.34"], "evil.example": ["93.184.216.34", "127.0.0.1"],
                           "meta.example": ["169.254.169.254"]})
    t = await resolve("https://hooks.example/x", STRICT)
    assert (t.host, t.port, t.addresses) == ("hooks.example", 443, ("93.184.216.34",))
    for name in ("evil.example", "meta.example"):  # one bad address is enough to refuse
        with pytest.raises(OutboundRefused, match="address"):
            await resolve(f"https://{name}/x", STRICT)
    with pytest.raises(OutboundRefused, match="does not resolve"):
        await resolve("https://nowhere.example/x", STRICT)
    await check("https://nowhere.example/x", STRICT)  # setting it: accepted, re-checked on send
    with pytest.raises(OutboundRefused):
        await check("https://meta.example/x", STRICT)
    allowed = OutboundPolicy(allow_hosts=frozenset({"meta.example"}))
    assert (await resolve("https://meta.example/x", allowed)).addresses == ("169.254.169.254",)


async def test_pinned_resolver_never_asks_dns_again() -> None:
    r = PinnedResolver(Target("https://hooks.example/x", "hooks.example", 443, ("93.184.216.34",)))
    got = await r.resolve("hooks.example", 443)
    assert [(a["host"], a["port"], a["hostname"]) for a in got] == [("93.184.216.34", 443, "hooks.example")]
    with pytest.raises(OSError):
        await r.resolve("other.example", 443)  # e.g. a redirect elsewhere: never resolved


async def test_jwks_url_goes_through_the_guard() -> None:
    from perilune.gateway.jwks import JwksError, url_source

    with pytest.raises(JwksError, match="https"):
        await url_source("http://127.0.0.1:9/jwks.json")()
    with pytest.raises(JwksError, match="loopback"):
        await url_source("https://127.0.0.1:9/jwks.json")()
