"""The relay writes what one upstream read brought in one write and never holds an item for one still
to come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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


async def relay(batches: AsyncIterator[list[JSON]], encoder: OpenAIEncoder | None = None,
                tally: Tally | None = None) -> tuple[Writes, bytes]:
    w = Writes()
    held = await relay_stream(batches, encoder or OpenAIEncoder(), served(), w, tally or Tally(),
                              lambda: None, lambda: False)
    return w, held


async def test_each_upstream_read_is_one_write() -> None:
    async def batches() -> AsyncIterator[list[JSON]]:
        for batch in ([0, 1, 2], [3], [4, 5]):  # three upstream reads
            await asyncio.sleep(0)
            yield [chunk(i) for i in batch]

    w, held = await relay(batches())
    assert [c.count(b"data: ") for c in w.calls] == [3, 1, 2]
    assert held == b""


async def test_nothing_waits_for_an_item_still_to_come() -> None:
    w = Writes()
    gate = asyncio.Event()

    async def batches() -> AsyncIterator[list[JSON]]:
        yield [chunk(0)]
        await gate.wait()
        yield [chunk(1)]

    task = asyncio.create_task(relay_stream(batches(), OpenAIEncoder(), served(), w, Tally(),
                                            lambda: None, lambda: False))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(w.calls) == 1 and b'"w0"' in w.calls[0]  # written while the next item has not arrived
    gate.set()
    assert await task == b""
    assert len(w.calls) == 2


async def test_a_large_batch_is_written_in_bounded_pieces() -> None:
    big = "x" * 4096

    async def batches() -> AsyncIterator[list[JSON]]:
        yield [{"choices": [{"index": 0, "delta": {"content": big}}]} for _ in range(64)]

    w, held = await relay(batches())
    assert len(w.calls) >= 3 and all(len(c) < FLUSH_BYTES + 8192 for c in w.calls) and held == b""
    assert sum(c.count(b"data: ") for c in w.calls) == 64


async def test_the_last_batch_is_held_for_the_end_of_the_stream() -> None:
    done = False

    async def batches() -> AsyncIterator[list[JSON]]:
        nonlocal done
        yield [chunk(0), chunk(1)]
        done = True  # the upstream's end marker came with this read
        yield [chunk(2)]

    w = Writes()
    held = await relay_stream(batches(), OpenAIEncoder(), served(), w, Tally(), lambda: None, lambda: False,
                              lambda: done)
    assert [c.count(b"data: ") for c in w.calls] == [2]  # the caller sends the rest with the end: one write
    assert held.count(b"data: ") == 1 and b'"w2"' in held
