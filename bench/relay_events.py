"""What relaying one stream's events costs in the gateway's own code, decoded and re-encoded against
relayed as the upstream sent them, measured side by side in one process.

    .venv/bin/python bench/relay_events.py [--chunks 20] [--number 20000]

The stream is an OpenAI chat stream as OpenAI sends it with ``include_usage`` (a role chunk, ``--chunks``
content chunks carrying ``"usage": null``, a finish chunk, the usage chunk, ``[DONE]``), arriving in two
reads (the first chunks, then the rest). Timed per stream: SSE framing, the decoder, the relay's text
tally and the encoder, up to the bytes the client gets, including the usage chunk perilune adds.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perilune._sse import SSEDecoder
from perilune.gateway.relay import OpenAIEncoder, Served
from perilune.providers.base import StreamItem
from perilune.providers.openai_compat import OpenAIStreamDecoder

WORDS = ("The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "the", "load", "test")


def stream(chunks: int) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_796_000_000, "model": "m",
            "service_tier": "default", "system_fingerprint": "fp_1"}

    def event(choices: list[object], usage: object = None) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, "usage": usage}) + b"\n\n"

    role = event([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                   "logprobs": None, "finish_reason": None}])
    words = [event([{"index": 0, "delta": {"content": " " + WORDS[i % len(WORDS)]}, "logprobs": None,
                     "finish_reason": None}]) for i in range(chunks)]
    end = event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
    usage = event([], {"prompt_tokens": 20, "completion_tokens": chunks, "total_tokens": 20 + chunks})
    rest = b"".join([*words[1:], end, usage, b"data: [DONE]\n\n"])
    return [role + words[0], rest]


def relay(pieces: list[bytes], as_sent: bool) -> bytes:
    served = Served("req_1", 0.0, "chat", provider="up", upstream_model="m")
    sse, dec, enc = SSEDecoder(), OpenAIStreamDecoder("up"), OpenAIEncoder(include_usage=True)
    if as_sent:
        tail = enc.passthrough("up")
        assert tail is not None
        dec.relay_as_sent(tail)
    texts: list[str] = []
    out = []
    for piece in pieces:
        batch: list[StreamItem] = []
        dec.feed_blocks(sse.blocks(piece), batch)
        for item in batch:
            if isinstance(item, tuple):
                out.append(item[0])
                texts.append(item[1])
            else:
                texts.append(enc.text(item))
                out.append(enc.item(item, served))
    out.append(enc.finish(served))
    return b"".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--number", type=int, default=20_000)
    args = ap.parse_args()
    pieces = stream(args.chunks)
    decoded, sent = relay(pieces, False), relay(pieces, True)
    same = [orjson.loads(e[6:]) for e in decoded.split(b"\n\n") if e.startswith(b"data: {")]
    assert same == [orjson.loads(e[6:]) for e in sent.split(b"\n\n") if e.startswith(b"data: {")]
    events = len(same) + 1
    print(f"one stream of {events} events ({args.chunks} content chunks), best of 5 x {args.number}:")
    for name, as_sent in (("decoded and re-encoded", False), ("relayed as sent", True)):
        t = min(timeit.repeat(lambda a=as_sent: relay(pieces, a), number=args.number, repeat=5))
        print(f"  {name:24s} {t / args.number * 1e6:6.1f} us per stream")


if __name__ == "__main__":
    main()
