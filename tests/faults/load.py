"""A concurrent load driver: raw HTTP (httpx) and the official openai / anthropic SDKs, in both client
dialects, streamed and not, including clients that hang up after the first k chunks. Every answer is
kept as a `Result` with the response's x-request-id, so the invariants can look its record up."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anthropic
import httpx
import openai
import orjson

from tests.faults.cluster import log

PROMPT = "Count the sheep please"


@dataclass(frozen=True)
class Spec:
    """One request to make."""

    dialect: Literal["openai", "anthropic"] = "openai"
    model: str = "sim-gpt"
    stream: bool = False
    hangup_after: int | None = None  # close the connection after this many content chunks
    sdk: bool = False
    max_tokens: int | None = 16
    sim: tuple[tuple[str, str], ...] = ()  # x-sim-* headers for the simulator upstream
    prompt: str = PROMPT
    timeout_s: float = 30.0
    extra: tuple[tuple[str, Any], ...] = ()  # more body fields

    @property
    def kind(self) -> str:
        parts = [self.dialect, self.model]
        parts += ["sdk"] if self.sdk else []
        parts += ["stream"] if self.stream else []
        parts += ["hangup"] if self.hangup_after is not None else []
        return "/".join(parts)


@dataclass
class Result:
    spec: Spec
    node: int
    request_id: str | None = None
    status: int | None = None  # HTTP status; None: no response at all
    code: str | None = None  # error code of an error body
    body: bytes = b""  # an error body
    error: str = ""  # transport or SDK error (after or instead of a response)
    hung_up: bool = False  # the client closed the stream on purpose
    chunks: int = 0  # content chunks received
    done: bool = False  # the stream ended properly ([DONE] / message_stop, or the SDK's iterator ended)
    error_event: Any = None  # an in-stream error event, as received
    events: list[str] = field(default_factory=list)  # stream event types / markers, in order
    started: float = 0.0
    ended: float = 0.0

    def __str__(self) -> str:
        extra = f" error={self.error[:120]!r}" if self.error else ""
        extra += f" event={self.error_event!r}"[:200] if self.error_event is not None else ""
        return f"{self.request_id} [{self.spec.kind} on node {self.node}] HTTP {self.status}{extra}"


def _openai_body(spec: Spec) -> dict[str, Any]:
    body: dict[str, Any] = {"model": spec.model, "messages": [{"role": "user", "content": spec.prompt}],
                            "stream": spec.stream}
    if spec.max_tokens is not None:
        body["max_tokens"] = spec.max_tokens
    if spec.stream:
        body["stream_options"] = {"include_usage": True}
    return {**body, **dict(spec.extra)}


def _anthropic_body(spec: Spec) -> dict[str, Any]:
    body: dict[str, Any] = {"model": spec.model, "messages": [{"role": "user", "content": spec.prompt}],
                            "stream": spec.stream}
    if spec.max_tokens is not None:
        body["max_tokens"] = spec.max_tokens
    return {**body, **dict(spec.extra)}


def _error_code(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        err = orjson.loads(body).get("error") or {}
        return err.get("code") or err.get("type")
    return None


class Driver:
    """Sends `Spec`s to the gateways at `urls` with one key; `run()` keeps `concurrency` in flight."""

    def __init__(self, urls: list[str], key: str) -> None:
        self.urls = urls
        self.key = key
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0),
                                      limits=httpx.Limits(max_connections=400, max_keepalive_connections=100))
        self._openai: dict[str, openai.AsyncOpenAI] = {}
        self._anthropic: dict[str, anthropic.AsyncAnthropic] = {}
        self.results: list[Result] = []

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        for c in self._openai.values():
            await c.close()
        for a in self._anthropic.values():
            await a.close()

    # ---- one request ----
    async def send(self, spec: Spec, node: int = 0) -> Result:
        res = Result(spec, node, started=time.monotonic())
        try:
            async with asyncio.timeout(spec.timeout_s):
                if spec.sdk and spec.dialect == "openai":
                    await self._openai_sdk(spec, res)
                elif spec.sdk:
                    await self._anthropic_sdk(spec, res)
                else:
                    await self._raw(spec, res)
        except TimeoutError:
            res.error = res.error or f"TimeoutError: no end within {spec.timeout_s} s"
        except Exception as e:  # any transport failure (the SDKs bring their own httpx) is a result, kept
            res.error = f"{e.__class__.__module__}.{e.__class__.__name__}: {e}"
        res.ended = time.monotonic()
        self.results.append(res)
        return res

    async def _raw(self, spec: Spec, res: Result) -> None:
        base = self.urls[res.node]
        if spec.dialect == "openai":
            url, body = base + "/v1/chat/completions", _openai_body(spec)
            headers = {"Authorization": f"Bearer {self.key}"}
        else:
            url, body = base + "/v1/messages", _anthropic_body(spec)
            headers = {"x-api-key": self.key, "anthropic-version": "2023-06-01"}
        headers.update(dict(spec.sim))
        if not spec.stream:
            r = await self.http.post(url, content=orjson.dumps(body),
                                     headers={**headers, "Content-Type": "application/json"})
            res.status, res.request_id = r.status_code, r.headers.get("x-request-id")
            if r.status_code >= 400:
                res.body = r.content[:4000]
                res.code = _error_code(res.body)
            return
        async with self.http.stream("POST", url, content=orjson.dumps(body),
                                    headers={**headers, "Content-Type": "application/json"}) as r:
            res.status, res.request_id = r.status_code, r.headers.get("x-request-id")
            if r.status_code >= 400:
                res.body = (await r.aread())[:4000]
                res.code = _error_code(res.body)
                return
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    res.events.append("[DONE]")
                    res.done = True
                    continue
                event = orjson.loads(data)
                kind = event.get("type") or ("error" if "error" in event else "chunk")
                res.events.append(kind)
                if kind == "error" or "error" in event:
                    res.error_event = event
                elif kind == "message_stop":
                    res.done = True
                elif _is_content(event):
                    res.chunks += 1
                    if spec.hangup_after is not None and res.chunks >= spec.hangup_after:
                        res.hung_up = True
                        return  # leaving the block closes the connection mid-stream

    def _openai_client(self, base: str) -> openai.AsyncOpenAI:
        if base not in self._openai:
            self._openai[base] = openai.AsyncOpenAI(base_url=base + "/v1", api_key=self.key, max_retries=0,
                                                    timeout=30.0)
        return self._openai[base]

    def _anthropic_client(self, base: str) -> anthropic.AsyncAnthropic:
        if base not in self._anthropic:
            self._anthropic[base] = anthropic.AsyncAnthropic(base_url=base, api_key=self.key, max_retries=0,
                                                             timeout=30.0)
        return self._anthropic[base]

    async def _openai_sdk(self, spec: Spec, res: Result) -> None:
        client = self._openai_client(self.urls[res.node])
        kw: dict[str, Any] = {"model": spec.model, "messages": [{"role": "user", "content": spec.prompt}],
                              "extra_headers": dict(spec.sim)}
        if spec.max_tokens is not None:
            kw["max_tokens"] = spec.max_tokens
        try:
            if not spec.stream:
                raw = await client.chat.completions.with_raw_response.create(**kw)
                res.status, res.request_id = raw.status_code, raw.headers.get("x-request-id")
                await _parse(raw)
                return
            raw = await client.chat.completions.with_raw_response.create(
                stream=True, stream_options={"include_usage": True}, **kw)
            res.status, res.request_id = raw.status_code, raw.headers.get("x-request-id")
            stream = await _parse(raw)
            async for chunk in stream:
                res.events.append("chunk")
                if chunk.choices and chunk.choices[0].delta.content:
                    res.chunks += 1
                    if spec.hangup_after is not None and res.chunks >= spec.hangup_after:
                        res.hung_up = True
                        await stream.close()
                        return
            res.done = True
        except openai.APIStatusError as e:
            if res.status == 200:  # an error raised for an event in a stream that had begun
                res.error_event = {"error": {"message": e.message, "code": e.code}}
                return
            res.status, res.request_id = e.status_code, e.response.headers.get("x-request-id")
            res.code = e.code
        except (openai.APIConnectionError, openai.APIResponseValidationError) as e:
            res.error = f"{e.__class__.__name__}: {e} ({e.__cause__!r})"
        except openai.APIError as e:  # an in-stream error event
            res.error_event = {"error": {"message": e.message, "code": e.code}}

    async def _anthropic_sdk(self, spec: Spec, res: Result) -> None:
        client = self._anthropic_client(self.urls[res.node])
        kw: dict[str, Any] = {"model": spec.model, "messages": [{"role": "user", "content": spec.prompt}],
                              "max_tokens": spec.max_tokens or 1024, "extra_headers": dict(spec.sim)}
        try:
            if not spec.stream:
                raw = await client.messages.with_raw_response.create(**kw)
                res.status, res.request_id = raw.status_code, raw.headers.get("x-request-id")
                await _parse(raw)
                return
            raw = await client.messages.with_raw_response.create(stream=True, **kw)
            res.status, res.request_id = raw.status_code, raw.headers.get("x-request-id")
            stream = await _parse(raw)
            async for event in stream:
                res.events.append(event.type)
                if event.type == "content_block_delta":
                    res.chunks += 1
                    if spec.hangup_after is not None and res.chunks >= spec.hangup_after:
                        res.hung_up = True
                        await stream.close()
                        return
                elif event.type == "message_stop":
                    res.done = True
        except anthropic.APIStatusError as e:
            if res.status == 200:  # raised for an `event: error` in a stream that had begun
                res.error_event = e.body if e.body is not None else {"type": "error", "error": {"message": e.message}}
                return
            res.status, res.request_id = e.status_code, e.response.headers.get("x-request-id")
            err = (e.body or {}).get("error") if isinstance(e.body, dict) else None
            res.code = err.get("type") if isinstance(err, dict) else None
        except (anthropic.APIConnectionError, anthropic.APIResponseValidationError) as e:
            res.error = f"{e.__class__.__name__}: {e} ({e.__cause__!r})"
        except anthropic.APIError as e:
            res.error_event = {"type": "error", "error": {"message": e.message}}

    # ---- load ----
    async def run(self, mix: Callable[[int], Spec], *, concurrency: int, count: int | None = None,
                  duration_s: float | None = None, stop: asyncio.Event | None = None,
                  nodes: list[int] | None = None) -> list[Result]:
        """Keep `concurrency` requests in flight until `count` were sent, `duration_s` passed or `stop`
        is set. Request i is `mix(i)`, sent to node i % len(nodes)."""
        assert count is not None or duration_s is not None or stop is not None
        targets = nodes if nodes is not None else list(range(len(self.urls)))
        counter = itertools.count()
        deadline = time.monotonic() + duration_s if duration_s is not None else None
        mine: list[Result] = []

        async def worker() -> None:
            while True:
                i = next(counter)
                if count is not None and i >= count:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if stop is not None and stop.is_set():
                    return
                mine.append(await self.send(mix(i), targets[i % len(targets)]))

        log.info("load: %d in flight%s", concurrency, f" for {duration_s} s" if duration_s else "")
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        log.info("load done: %d requests", len(mine))
        return mine


async def _parse(raw: Any) -> Any:
    """SDK raw responses parse synchronously or as a coroutine, depending on the SDK's version."""
    parsed = raw.parse()
    return await parsed if inspect.isawaitable(parsed) else parsed


def _is_content(event: dict[str, Any]) -> bool:
    if event.get("type") == "content_block_delta":
        return True
    choices = event.get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


def summary(results: list[Result]) -> str:
    """'openai/sim-gpt/stream: 200 x 40, 503 x 3; ...' for failure messages and the report."""
    by: dict[str, dict[str, int]] = {}
    for r in results:
        key = str(r.status) + ("" if not r.error else "+err") + ("+hangup" if r.hung_up else "")
        by.setdefault(r.spec.kind, {}).setdefault(key, 0)
        by[r.spec.kind][key] += 1
    return "; ".join(f"{k}: " + ", ".join(f"{s} x {n}" for s, n in sorted(v.items())) for k, v in sorted(by.items()))
