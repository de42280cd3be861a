"""The relay writes what arrived together in one write, and never holds an item for one still to come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from perilune.gateway.pipeline import Ahead, Opened
from perilune.gateway.relay import FLUSH_BYTES, OpenAIEncoder, Served, Tally, relay_stream
from perilune.schema.canonical import JSON


def chunk(i: int) -> JSON:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": f"w{i}"}}]}


class Writes:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def __call__(self, data: bytes) -> None:
        self.calls.append(data)


def served() -> Served:
    return Served(request_id="r", started_wall=0.0, endpoint="/v1/chat/completions", provider="up",
                  upstream_model="m")


async def relay(items: AsyncIterator[JSON], more: object) -> tuple[Writes, bytes]:
    w = Writes()
    held = await relay_stream(items, OpenAIEncoder(include_usage=False), served(), w, Tally(),
                              lambda: None, lambda: False, more)  # type: ignore[arg-type]
    return w, held


async def test_items_of_one_read_leave_in_one_write() -> None:
    ahead = Ahead()

    async def items() -> AsyncIterator[JSON]:
        for batch in ([0, 1, 2], [3], [4, 5]):  # three upstream reads
            await asyncio.sleep(0)
            ahead.queued = len(batch)
            for i in batch:
                ahead.queued -= 1
                yield chunk(i)

    w, held = await relay(items(), lambda: ahead.queued > 0)
    assert [c.count(b"data: ") for c in w.calls] == [3, 1, 2]
    assert b"".join(w.calls).index(b'"w0"') < b"".join(w.calls).index(b'"w5"')
    assert held == b""


async def test_nothing_waits_for_an_item_still_to_come() -> None:
    """more() False after every item: each is written before the relay waits for the next."""
    w = Writes()
    gate = asyncio.Event()

    async def items() -> AsyncIterator[JSON]:
        yield chunk(0)
        await gate.wait()
        yield chunk(1)

    task = asyncio.create_task(relay_stream(items(), OpenAIEncoder(include_usage=False), served(), w, Tally(),
                                            lambda: None, lambda: False, lambda: False))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(w.calls) == 1 and b'"w0"' in w.calls[0]  # written while the next item has not arrived
    gate.set()
    assert await task == b""
    assert len(w.calls) == 2


async def test_a_large_burst_is_written_in_bounded_pieces() -> None:
    big = "x" * 4096

    async def items() -> AsyncIterator[JSON]:
        for _ in range(64):
            yield {"choices": [{"index": 0, "delta": {"content": big}}]}

    w, held = await relay(items(), lambda: True)  # everything "already here"
    assert all(len(c) < FLUSH_BYTES + 8192 for c in w.calls)
    assert len(w.calls) >= 3 and held == b""  # the last partial piece was flushed or is held for the end
    assert sum(c.count(b"data: ") for c in w.calls) + held.count(b"data: ") == 64


async def test_opened_reports_the_head_and_the_upstream_read_ahead() -> None:
    ahead = Ahead(queued=0)
    opened = Opened(deployment=None, reservation=None, native=False,  # type: ignore[arg-type]
                    head=[chunk(0), chunk(1)], rest=None, ahead=ahead)
    seen = []
    async for _ in opened.items():
        seen.append(opened.more())
    assert seen == [True, False]  # the first head item has the second behind it; then nothing is here
    ahead.queued = 2
    assert opened.more()
