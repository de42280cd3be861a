"""Streams, sync and async: iterate for typed items; afterwards the final usage (with cost and
timings) and the assembled text are attributes. Use as a context manager, or iterate to the end,
to release the connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Generic, Self, TypeVar

import httpx

from perilune_sdk._base import (
    Accumulator,
    ChatAccumulator,
    CompletionAccumulator,
    MessageAccumulator,
    ResponseAccumulator,
)
from perilune_sdk._errors import PeriluneError
from perilune_sdk._sse import aevents, events
from perilune_sdk.types import (
    ChatCompletionChunk,
    CompletionChoice,
    Message,
    MessageStreamEvent,
    MessageUsage,
    Response,
    ResponseStreamEvent,
    Usage,
)

T = TypeVar("T")


class Stream(Generic[T]):
    def __init__(self, response: httpx.Response, acc: Accumulator[T]) -> None:
        self.response = response
        self._acc = acc
        self.request_id: str | None = response.headers.get("x-request-id")

    def __iter__(self) -> Iterator[T]:
        try:
            for event, data in events(self.response.iter_lines()):
                item = self._acc.feed(event, data)
                if item is not None:
                    yield item
                if self._acc.done:
                    break
        finally:
            self.response.close()

    def until_done(self) -> Self:
        """Read the stream to its end (the items are dropped; usage and text are kept)."""
        for _ in self:
            pass
        return self

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncStream(Generic[T]):
    def __init__(self, response: httpx.Response, acc: Accumulator[T]) -> None:
        self.response = response
        self._acc = acc
        self.request_id: str | None = response.headers.get("x-request-id")

    async def __aiter__(self) -> AsyncIterator[T]:
        try:
            async for event, data in aevents(self.response.aiter_lines()):
                item = self._acc.feed(event, data)
                if item is not None:
                    yield item
                if self._acc.done:
                    break
        finally:
            await self.response.aclose()

    async def until_done(self) -> Self:
        async for _ in self:
            pass
        return self

    async def close(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


U = TypeVar("U")


def _final(usage: U | None) -> U:
    if usage is None:
        raise PeriluneError("No usage yet: it comes at the end of the stream; read the stream to its end first.")
    return usage


class _ChatInfo:
    _info: ChatAccumulator
    response: httpx.Response

    @property
    def usage(self) -> Usage:
        """Tokens, cost and timings of the whole stream (sent with the last chunk)."""
        return _final(self._info.usage)

    @property
    def text(self) -> str:
        return self._info.text

    @property
    def provider(self) -> str | None:
        return self._info.provider

    @property
    def model(self) -> str | None:
        return self._info.model

    @property
    def routed_model(self) -> str | None:
        """For router streams: the model the router chose (``x-perilune-routed-model``)."""
        value: str | None = self.response.headers.get("x-perilune-routed-model")
        return value


class _CompletionInfo:
    _info: CompletionAccumulator

    @property
    def usage(self) -> Usage:
        return _final(self._info.usage)

    @property
    def text(self) -> str:
        return self._info.text

    @property
    def provider(self) -> str | None:
        return self._info.provider


class _MessageInfo:
    _info: MessageAccumulator

    @property
    def usage(self) -> MessageUsage:
        """Tokens, cost and timings (sent with message_delta)."""
        return _final(self._info.usage)

    @property
    def text(self) -> str:
        return self._info.text

    @property
    def message(self) -> Message | None:
        """The message as announced by ``message_start`` (id, model, provider)."""
        return self._info.message

    @property
    def provider(self) -> str | None:
        return self._info.provider

    @property
    def stop_reason(self) -> str | None:
        return self._info.stop_reason


class _ResponseInfo:
    _info: ResponseAccumulator

    @property
    def response_object(self) -> Response | None:
        """The final Response (from response.completed), with usage and cost."""
        return self._info.response

    @property
    def text(self) -> str:
        return self._info.text


class ChatStream(_ChatInfo, Stream[ChatCompletionChunk]):
    def __init__(self, response: httpx.Response, acc: ChatAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class AsyncChatStream(_ChatInfo, AsyncStream[ChatCompletionChunk]):
    def __init__(self, response: httpx.Response, acc: ChatAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class CompletionStream(_CompletionInfo, Stream[CompletionChoice]):
    def __init__(self, response: httpx.Response, acc: CompletionAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class AsyncCompletionStream(_CompletionInfo, AsyncStream[CompletionChoice]):
    def __init__(self, response: httpx.Response, acc: CompletionAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class MessageStream(_MessageInfo, Stream[MessageStreamEvent]):
    def __init__(self, response: httpx.Response, acc: MessageAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class AsyncMessageStream(_MessageInfo, AsyncStream[MessageStreamEvent]):
    def __init__(self, response: httpx.Response, acc: MessageAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class ResponseStream(_ResponseInfo, Stream[ResponseStreamEvent]):
    def __init__(self, response: httpx.Response, acc: ResponseAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc


class AsyncResponseStream(_ResponseInfo, AsyncStream[ResponseStreamEvent]):
    def __init__(self, response: httpx.Response, acc: ResponseAccumulator) -> None:
        super().__init__(response, acc)
        self._info = acc
