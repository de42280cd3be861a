"""Low-balance alert webhooks: checked when set, checked again and delivered through perilune._outbound.

A delivery is one JSON POST, retried with backoff on connection errors, timeouts, 429 and 5xx. A URL
the outbound policy refuses (private address, http when not allowed, ...) and a redirect are final:
they are logged once and never retried or followed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from perilune import _outbound
from perilune._outbound import OutboundPolicy, OutboundRefused
from perilune.errors import InvalidRequest

log = logging.getLogger("perilune.ledger")

ATTEMPTS = 4
BACKOFF_S = 0.5


async def check_webhook_url(url: str | None, policy: OutboundPolicy, param: str = "webhook_url") -> None:
    """400 naming ``param`` when ``url`` cannot be a webhook under ``policy``."""
    if url is None:
        return
    try:
        await _outbound.check(url, policy)
    except OutboundRefused as e:
        raise InvalidRequest(f"'{param}' {e}.", param=param, code="invalid_webhook_url") from None


async def deliver(url: str, payload: dict[str, Any], policy: OutboundPolicy, *, attempts: int = ATTEMPTS,
                  backoff_s: float = BACKOFF_S) -> bool:
    """POST ``payload`` to ``url``; True once it is accepted (2xx)."""
    body = orjson.dumps(payload)
    account = payload.get("account_id")
    for attempt in range(attempts):
        status: int | None = None
        try:
            status = await _outbound.post(url, body, policy, {"Content-Type": "application/json"})
        except OutboundRefused as e:
            _failed(url, account, f"refused: {e}")
            return False
        except (aiohttp.ClientError, TimeoutError, OSError):
            status = None
        if status is not None:
            if status < 300:
                return True
            if status < 400:
                _failed(url, account, f"HTTP {status}: redirects are not followed")
                return False
            if status < 500 and status != 429:
                _failed(url, account, f"HTTP {status}")
                return False
        if attempt + 1 < attempts:
            await asyncio.sleep(backoff_s * 2 ** attempt)
    _failed(url, account, f"no success after {attempts} attempts")
    return False


def _failed(url: str, account: object, why: str) -> None:
    log.error(orjson.dumps({"event": "balance.low.webhook_failed", "url": url, "account_id": account,
                            "reason": why}).decode())
