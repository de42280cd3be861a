"""The relay writes what one upstream read brought in one write, never holds an item for one still to
come, and passes OpenAI chunks through as sent (with ``provider``) unless something needs their content."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from perilune._sse import SSEDecoder
from perilune.gateway.relay import FLUSH_BYTES, OpenAIEncoder, Served, Tally, relay_stream
from perilune.providers.base import Item, RawChunk, passable
from perilune.providers.openai_compat import OpenAIStreamDecoder
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


async def relay(batches: AsyncIterator[list[Item]], encoder: OpenAIEncoder | None = None,
                tally: Tally | None = None) -> tuple[Writes, bytes]:
    w = Writes()
    held = await relay_stream(batches, encoder or OpenAIEncoder(), served(), w, tally or Tally(),
                              lambda: None, lambda: False)
    return w, held


async def test_each_upstream_read_is_one_write() -> None:
    async def batches() -> AsyncIterator[list[Item]]:
        for batch in ([0, 1, 2], [3], [4, 5]):  # three upstream reads
            await asyncio.sleep(0)
            yield [chunk(i) for i in batch]

    w, held = await relay(batches())
    assert [c.count(b"data: ") for c in w.calls] == [3, 1, 2]
    assert held == b""


async def test_nothing_waits_for_an_item_still_to_come() -> None:
    w = Writes()
    gate = asyncio.Event()

    async def batches() -> AsyncIterator[list[Item]]:
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

    async def batches() -> AsyncIterator[list[Item]]:
        yield [{"choices": [{"index": 0, "delta": {"content": big}}]} for _ in range(64)]

    w, held = await relay(batches())
    assert len(w.calls) >= 3 and all(len(c) < FLUSH_BYTES + 8192 for c in w.calls) and held == b""
    assert sum(c.count(b"data: ") for c in w.calls) == 64


def decode(wire: bytes) -> list[Item]:
    d, sse = OpenAIStreamDecoder("up"), SSEDecoder()
    return [item for event in sse.feed(wire) for item in d.feed(event)]


async def test_openai_chunks_pass_through_with_provider_and_without_usage_null() -> None:
    sent = [b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            b'"delta":{"content":"hel"},"finish_reason":null}],"usage":null}',
            b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            b'"delta":{"content":"lo"},"finish_reason":null}]}']
    items = decode(b"".join(b"data: " + s + b"\n\n" for s in sent))
    assert all(type(i) is RawChunk for i in items)
    tally = Tally()

    async def batches() -> AsyncIterator[list[Item]]:
        yield items

    w, _ = await relay(batches(), tally=tally)
    out = [orjson.loads(line[6:]) for line in w.calls[0].split(b"\n\n") if line]
    assert [o["choices"][0]["delta"]["content"] for o in out] == ["hel", "lo"]
    assert all(o["provider"] == "up" and "usage" not in o for o in out)
    first = orjson.loads(sent[0])
    del first["usage"]
    assert out[0] == {**first, "provider": "up"}
    assert tally.output_tokens() > 0  # the estimate reads the chunks it did not parse


def test_chunks_that_need_their_content_are_decoded() -> None:
    usage = b'{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    own = b'{"id":"c","provider":"openai","choices":[{"index":0,"delta":{"content":"x"}}]}'
    error_word = b'{"id":"c","choices":[{"index":0,"delta":{"content":"error"}}]}'
    assert passable(usage) is None and passable(own) is None and passable(error_word) is None
    assert passable(b"[1]") is None
    d = OpenAIStreamDecoder("up")
    assert decode(b"data: " + own + b"\n\n") and type(decode(b"data: " + own + b"\n\n")[0]) is dict
    assert d.feed(SSEDecoder().feed(b"data: " + usage + b"\n\n")[0]) == [] and d.usage is not None
    assert d.usage.output_tokens == 2


async def test_a_capturing_stream_parses_every_chunk() -> None:
    items = decode(b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    enc = OpenAIEncoder(capture=True)

    async def batches() -> AsyncIterator[list[Item]]:
        yield items

    await relay(batches(), encoder=enc)
    capture = enc.capture()
    assert capture is not None and "hi" in orjson.dumps(capture.result()).decode()
