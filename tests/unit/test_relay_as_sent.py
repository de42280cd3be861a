"""OpenAI chunks that need no change are relayed as the upstream sent them (a :data:`RawChunk`), and only
those: anything the relay must look into or change takes the decoded path, and a malformed chunk is still
an upstream error, never forwarded."""

from __future__ import annotations

import orjson
import pytest

from perilune._sse import SSEDecoder
from perilune.errors import PeriluneError
from perilune.gateway.relay import OpenAIEncoder, Served
from perilune.providers.base import StreamItem
from perilune.providers.openai_compat import OpenAIStreamDecoder

HEAD = b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":['


def content(text: str, usage: bytes = b',"usage":null') -> bytes:
    delta = orjson.dumps({"content": text})
    return HEAD + b'{"index":0,"delta":' + delta + b',"finish_reason":null}]' + usage + b"}"


def served() -> Served:
    return Served(request_id="r", started_wall=0.0, endpoint="chat", provider="up-1", upstream_model="m")


FIRST = HEAD + b'{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'


def decode(blocks: list[bytes], *, as_sent: bool = True) -> tuple[OpenAIStreamDecoder, list[StreamItem]]:
    """The items of a stream's blocks after its first chunk (which is always decoded)."""
    dec = OpenAIStreamDecoder("up-1")
    if as_sent:
        tail = OpenAIEncoder().passthrough(served().provider)
        assert tail is not None
        dec.relay_as_sent(tail)
    out: list[StreamItem] = []
    dec.feed_blocks([FIRST, *blocks], out)
    assert isinstance(out[0], dict)
    return dec, out[1:]


def relayed(item: StreamItem) -> dict[str, object]:
    """What the client receives for an item, as JSON."""
    data = item[0] if isinstance(item, tuple) else OpenAIEncoder().item(item, served())
    assert data.startswith(b"data: ") and data.endswith(b"\n\n")
    return dict(orjson.loads(data[6:]))


def test_a_plain_chunk_goes_as_sent_and_reads_as_the_decoded_one() -> None:
    blocks = [content(" brown"), content(" fox", usage=b"")]
    _, raw = decode(blocks)
    _, decoded = decode(blocks, as_sent=False)
    assert [type(i) for i in raw] == [tuple, tuple] and [type(i) for i in decoded] == [dict, dict]
    assert [i[1] for i in raw if isinstance(i, tuple)] == [" brown", " fox"]  # the text for estimates
    assert [relayed(i) for i in raw] == [relayed(i) for i in decoded]
    assert all(relayed(i)["provider"] == "up-1" and "usage" not in relayed(i) for i in raw)


@pytest.mark.parametrize("block", [
    content("x")[:-1] + b',"provider":"elsewhere"}',  # its own provider field: ours replaces it
    HEAD + b'{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}',  # tool calls
    HEAD + b'{"index":0,"delta":{"content":["not","text"]}}]}',  # a shape the check does not know
    HEAD[:7] + b'"usage":null,' + HEAD[7:] + b'{"index":0,"delta":{"content":"x"}}]}',  # null usage first
    HEAD + b'{"index":0,"delta":{"content":"x"},"usage":null}],"usage":null}',  # a nested one too
    content("x") + b" ",  # not ending with the object
])
def test_what_needs_a_look_is_decoded(block: bytes) -> None:
    _, out = decode([block])
    assert len(out) == 1 and isinstance(out[0], dict)
    got = relayed(out[0])
    assert got["provider"] == "up-1" and "usage" not in got


def test_null_usage_before_obfuscation_is_cut_as_sent() -> None:
    block = content("x", usage=b',"usage":null,"obfuscation":"abc"')  # OpenAI's order
    _, raw = decode([block])
    _, decoded = decode([block], as_sent=False)
    assert isinstance(raw[0], tuple) and b'"usage"' not in raw[0][0]
    assert relayed(raw[0]) == relayed(decoded[0]) and relayed(raw[0])["obfuscation"] == "abc"


def test_usage_and_done_are_read() -> None:
    usage = HEAD + b'],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
    dec, out = decode([content("a"), usage, b"data: [DONE]", content("after the end")])
    assert len(out) == 1 and isinstance(out[0], tuple)
    assert dec.usage is not None and (dec.usage.input_tokens, dec.usage.output_tokens) == (7, 3)
    assert dec.done


def test_a_malformed_chunk_is_an_upstream_error_after_what_came_before() -> None:
    bad = HEAD + b'{"index":0,"delta":{"content":"x"}},]}'  # a trailing comma: it still ends with }
    dec = OpenAIStreamDecoder("up-1")
    dec.relay_as_sent(b"}\n\n")
    out: list[StreamItem] = []
    with pytest.raises(PeriluneError, match="malformed"):
        dec.feed_blocks([FIRST, content("a"), bad, content("b")], out)
    assert len(out) == 2 and isinstance(out[1], tuple)


def test_invalid_utf8_is_not_sent_as_it_came() -> None:
    _, out = decode([HEAD + b'{"index":0,"delta":{"content":"x\xff"}}]}'])
    assert len(out) == 1 and isinstance(out[0], dict)  # decoded, with a replacement character
    assert relayed(out[0])["choices"] == [{"index": 0, "delta": {"content": "x\ufffd"}}]


def test_the_first_chunk_is_decoded_for_the_usage_chunk_at_the_end() -> None:
    enc = OpenAIEncoder(include_usage=True)
    dec = OpenAIStreamDecoder("up-1")
    tail = enc.passthrough("up-1")
    assert tail is not None
    dec.relay_as_sent(tail)
    out: list[StreamItem] = []
    dec.feed_blocks([content("a"), content("b")], out)
    first = out[0]
    assert isinstance(first, dict) and isinstance(out[1], tuple)
    enc.item(first, served())
    final = orjson.loads(enc.finish(served()).split(b"\n\n")[0][6:])
    assert (final["id"], final["model"], final["created"], final["choices"]) == ("c1", "m", 1, [])


def test_an_error_object_is_raised() -> None:
    with pytest.raises(PeriluneError):
        decode([content("a"), b'data: {"error":{"message":"overloaded","code":"server_error"}}'])


def test_choices_texts_are_joined() -> None:
    two = HEAD + b'{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}'
    legacy = (b'data: {"id":"c","object":"text_completion","created":1,"model":"m",'
              b'"choices":[{"index":0,"text":"old","finish_reason":null}]}')
    _, out = decode([two, legacy])
    assert [i[1] for i in out if isinstance(i, tuple)] == ["ab", "old"]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    sse = SSEDecoder()
    assert sse.blocks(b"data: a\r") == []
    assert sse.blocks(b"\n\r\ndata: b\r\n\r") == [b"data: a"]
    assert sse.blocks(b"\n") == [b"data: b"]
    assert sse.feed(b"data: c\r\r") == []  # the last CR waits: an LF may follow it
    assert [e.data for e in sse.flush()] == ["c"]
