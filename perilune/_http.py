"""The upstream HTTP client: one pooled aiohttp session per provider, timeouts, and the single place
where aiohttp's exceptions and upstream HTTP statuses become perilune errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from time import time

import aiohttp

from perilune.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from perilune.providers.base import Provider, UpstreamRequest


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
    except (TypeError, ValueError):
        return None


def status_error(provider: str, status: int, message: str, retry_after: str | None = None) -> UpstreamError:
    """An upstream's non-2xx answer as a perilune error."""
    text = f"{provider}: {message}" if message else f"{provider} answered HTTP {status}"
    if status == 429:
        return UpstreamRateLimited(text, retry_after_s=retry_after_s(retry_after) or 1.0)
    if status in (408, 504):
        return UpstreamTimeout(text)
    if status in (401, 403):
        return UpstreamUnavailable(f"{provider} rejected perilune's credentials for it (HTTP {status}): "
                                   f"{message}", code="upstream_auth_failed")
    if 400 <= status < 500:
        return UpstreamRejected(text, status=status if status in (400, 404, 409, 413, 422) else 400)
    return UpstreamUnavailable(f"{text} (HTTP {status})")


class UpstreamClient:
    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, provider: Provider) -> aiohttp.ClientSession:
        s = self._sessions.get(provider.name)
        if s is None or s.closed:
            t = provider.timeouts
            connector = aiohttp.TCPConnector(limit=provider.max_connections, limit_per_host=0,
                                             ttl_dns_cache=300, keepalive_timeout=75)
            s = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=t.connect_s, sock_read=t.stream_idle_s),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[provider.name] = s
        return s

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()

    async def open(self, provider: Provider, req: UpstreamRequest) -> aiohttp.ClientResponse:
        """Send the request and wait for the response head (bounded by ``first_byte_s``)."""
        session = self._session(provider)
        try:
            async with asyncio.timeout(provider.timeouts.first_byte_s):
                return await session.request(req.method, req.url, data=req.body if req.data is None else req.data,
                                             headers=req.headers)
        except TimeoutError:
            raise UpstreamTimeout(f"{provider.name} did not answer within "
                                  f"{provider.timeouts.first_byte_s:g} s") from None
        except aiohttp.ClientConnectorError as e:
            raise UpstreamUnavailable(f"{provider.name} is unreachable: {e.strerror or e}") from None
        except aiohttp.ServerTimeoutError:
            raise UpstreamTimeout(f"{provider.name} timed out") from None
        except (aiohttp.ClientError, OSError) as e:
            raise UpstreamUnavailable(f"{provider.name} connection failed: {e.__class__.__name__}: {e}") from None

    @staticmethod
    async def read(provider: Provider, resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"{provider.name} stopped sending the response body") from None
        except (aiohttp.ClientError, OSError) as e:
            raise UpstreamUnavailable(f"{provider.name} dropped the connection: {e.__class__.__name__}") from None
        finally:
            resp.release()

    @staticmethod
    async def iter_bytes(provider: Provider, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The body as it arrives; a drop or an idle timeout mid-body raises an UpstreamError."""
        try:
            async for chunk in resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"{provider.name} stream stalled for more than "
                                  f"{provider.timeouts.stream_idle_s:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise UpstreamUnavailable(f"{provider.name} dropped the stream: {e.__class__.__name__}") from None
        finally:
            with contextlib.suppress(Exception):
                resp.release()
