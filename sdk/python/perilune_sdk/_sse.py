"""Server-sent events: lines in, (event, data) pairs out. Both dialects end a stream with their own
marker (``data: [DONE]`` for OpenAI; ``message_stop`` for Anthropic, which also names each event)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SSEDecoder:
    event: str | None = None
    data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str | None, str] | None:
        """One line (without its end); returns a complete event at each blank line."""
        if not line:
            if not self.data and self.event is None:
                return None
            out = (self.event, "\n".join(self.data))
            self.event, self.data = None, []
            return out
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        return None

    def flush(self) -> tuple[str | None, str] | None:
        return self.feed("")


def decode(data: str) -> Any:
    return json.loads(data)


def events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    dec = SSEDecoder()
    for line in lines:
        ev = dec.feed(line.rstrip("\r"))
        if ev is not None:
            yield ev
    last = dec.flush()
    if last is not None:
        yield last


async def aevents(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, str]]:
    dec = SSEDecoder()
    async for line in lines:
        ev = dec.feed(line.rstrip("\r"))
        if ev is not None:
            yield ev
    last = dec.flush()
    if last is not None:
        yield last
