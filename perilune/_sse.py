"""Server-sent events: an incremental decoder for upstream streams and encoders for our own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Feed raw bytes as they arrive; get complete events back. Handles LF, CRLF and CR line ends,
    multi-line ``data:`` fields, comments and events split across network reads."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def blocks(self, chunk: bytes) -> list[bytes]:
        """The complete event blocks (the bytes between blank lines, line ends made LF) that ``chunk``
        completes; what follows the last blank line waits for the next chunk."""
        buf = self._buf + chunk if self._buf else chunk
        held = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # its LF may be in the next chunk: one line end, not two
                buf, held = buf[:-1], b"\r"
            buf = _lf(buf)
        parts = buf.split(b"\n\n")
        self._buf = parts.pop() + held
        return parts

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return [ev for block in self.blocks(chunk) if (ev := parse_block(block)) is not None]

    def flush(self) -> list[SSEEvent]:
        """At end of stream: an unterminated final event still counts."""
        rest, self._buf = _lf(self._buf).strip(b"\n"), b""
        ev = parse_block(rest) if rest else None
        return [ev] if ev is not None else []


def _lf(buf: bytes) -> bytes:
    """CR LF and lone CR line ends made LF."""
    return buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def parse_block(block: bytes) -> SSEEvent | None:
    """One event block (see :meth:`SSEDecoder.blocks`); None for a comment or an empty block."""
    if block.startswith(b"data: ") and b"\n" not in block:  # the usual event: one data line
        return SSEEvent(None, block[6:].decode("utf-8", "replace"))
    event: str | None = None
    data: list[str] = []
    for raw in block.split(b"\n"):
        if not raw or raw.startswith(b":"):
            continue
        name, _, value = raw.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if not data and event is None:
        return None
    return SSEEvent(event, "\n".join(data))


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def encode_event(name: str, payload: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


DONE = b"data: [DONE]\n\n"
