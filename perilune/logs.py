"""Structured logs: one JSON object per line, with the request id of the request being served.

The request id lives in a context variable set by the endpoint wrapper; every log call made while a
request is handled (also from threads started with ``asyncio.to_thread``, which copy the context)
carries it. Secrets that look like API keys or bearer tokens are masked in messages and tracebacks.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("perilune_request_id", default=None)

_SECRET = re.compile(r"pk_(?:live|admin|test)_[0-9A-Za-z_]{6,}|sk-[0-9A-Za-z_\-]{8,}"
                     r"|(?i:bearer)\s+[^\s\"',]+")
_RESERVED = ("t", "level", "logger", "msg", "request_id", "exc")


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    """``{"t", "level", "logger", "msg", "request_id"?, ...fields, "exc"?}``. Pass structured fields as
    ``log.info("...", extra={"fields": {...}})``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "t": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                if k not in _RESERVED:
                    out[k] = v
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


def configure(level: str = "info") -> None:
    """JSON lines on stderr for the whole process (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
