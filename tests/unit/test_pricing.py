"""Exact cost: golden examples per provider semantics, and properties of the arithmetic."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from perilune.accounting.catalog import ModelInfo, Price
from perilune.accounting.pricing import cost_of, from_pico, to_pico, usd_number, usd_str
from perilune.schema.canonical import Usage

D = Decimal


def test_openai_cached_tokens_are_inside_prompt_tokens() -> None:
    # gpt-4o-mini list prices: $0.15 input, $0.075 cached input, $0.60 output per million tokens.
    # 10,000 prompt tokens of which 8,000 cached, 1,000 completion tokens:
    #   2,000 x 0.15/M + 8,000 x 0.075/M + 1,000 x 0.60/M = 0.0003 + 0.0006 + 0.0006 = $0.0015
    u = Usage.from_openai({"prompt_tokens": 10_000, "completion_tokens": 1_000,
                           "prompt_tokens_details": {"cached_tokens": 8_000}})
    assert (u.input_tokens, u.cache_read_tokens, u.prompt_tokens) == (2_000, 8_000, 10_000)
    c = cost_of(u, Price(input=D("0.15"), output=D("0.60"), cache_read=D("0.075")))
    assert (c.input_usd, c.cache_usd, c.output_usd, c.total_usd) == (D("0.0003"), D("0.0006"), D("0.0006"),
                                                                      D("0.0015"))


def test_reasoning_tokens_are_billed_as_output() -> None:
    u = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 500,
                           "completion_tokens_details": {"reasoning_tokens": 400}})
    c = cost_of(u, Price(input=D("1.10"), output=D("4.40")))
    assert u.reasoning_tokens == 400 and c.output_usd == D("0.0022")  # 500 x 4.40 / 1M


def test_anthropic_input_excludes_cache_reads_and_writes() -> None:
    # Sonnet-class prices: $3 input, $15 output; cache write 1.25x = $3.75, cache read 0.1x = $0.30.
    # input_tokens 50, cache_creation_input_tokens 10,000, cache_read_input_tokens 0, output 500:
    #   50 x 3 + 10,000 x 3.75 + 500 x 15 = 150 + 37,500 + 7,500 = 45,150 micro-USD
    price = Price(input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write=D("3.75"))
    first = Usage(input_tokens=50, cache_write_tokens=10_000, output_tokens=500)
    assert cost_of(first, price).total_usd == D("0.04515")
    # the same prompt again, now read from the cache: 50 x 3 + 10,000 x 0.30 + 500 x 15 = 10,650
    second = Usage(input_tokens=50, cache_read_tokens=10_000, output_tokens=500)
    c = cost_of(second, price)
    assert c.total_usd == D("0.01065") and c.cache_usd == D("0.003")
    assert second.prompt_tokens == 10_050  # what an OpenAI-dialect client sees as prompt_tokens


def test_gemini_cached_content_is_inside_prompt_count() -> None:
    # Gemini reports promptTokenCount including cachedContentTokenCount, like OpenAI.
    u = Usage(input_tokens=1_000 - 600, cache_read_tokens=600, output_tokens=200, reasoning_tokens=50)
    c = cost_of(u, Price(input=D("0.30"), output=D("2.50"), cache_read=D("0.075")))
    assert c.total_usd == D("0.00012") + D("0.000045") + D("0.0005")


def test_cache_prices_default_to_input_price() -> None:
    u = Usage(input_tokens=10, cache_read_tokens=20, cache_write_tokens=30, output_tokens=0)
    assert cost_of(u, Price(input=D("2"), output=D("8"))).total_usd == D("0.00012")


def test_units_images_and_audio_minutes() -> None:
    assert cost_of(Usage(images=3), Price(per_image=D("0.04"))).unit_usd == D("0.12")
    # 90.5 s of audio at $0.006 per minute = 0.00905
    assert cost_of(Usage(audio_seconds=D("90.5")), Price(per_audio_minute=D("0.006"))).unit_usd == D("0.00905")


def test_discount_applies_to_every_price() -> None:
    m = ModelInfo(id="m", name="m", vendor="v", providers=("p",), kind="chat", context=None, max_output_tokens=None,
                  price=Price(input=D("1"), output=D("4"), cache_read=D("0.5")), input_modalities=("text",),
                  output_modalities=("text",), supported_parameters=(), reasoning=False, release_date=None,
                  description="", discount_percentage=D("25"))
    assert m.effective_price == Price(input=D("0.75"), output=D("3.00"), cache_read=D("0.375"))


def test_money_formats() -> None:
    assert usd_str(75_000) == "0.000000075"
    assert usd_str(10 * 10**12) == "10"
    assert usd_str(0) == "0"
    # one shape of money in every API response: a plain decimal string, never in exponent notation
    assert usd_number(D("0.000038")) == "0.000038" and usd_number(D("7.5E-8")) == "0.000000075"
    assert usd_number(D("6E-6")) == "0.000006" and usd_number(D("10.00")) == "10" and usd_number(D(0)) == "0"
    assert usd_number(D("-1.50")) == "-1.5" and usd_number(D("123456789.000000000001")) == "123456789.000000000001"
    assert from_pico(to_pico(D("12.345678901234"))) == D("12.345678901234")


@given(st.integers(min_value=-(10**24), max_value=10**24))
def test_usd_str_is_the_decimal_rendering_of_pico_usd(pico: int) -> None:
    expected = format(D(pico).scaleb(-12), "f")
    expected = expected.rstrip("0").rstrip(".") if "." in expected else expected
    assert usd_str(pico) == (expected if expected not in ("-0", "") else "0")


prices = st.decimals(min_value=D("0"), max_value=D("1000"), places=6, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=0, max_value=10_000_000)


@given(prices, prices, prices, prices, tokens, tokens, tokens, tokens)
def test_cost_is_exact_and_additive(pin: Decimal, pout: Decimal, pread: Decimal, pwrite: Decimal, i: int, o: int,
                                    r: int, w: int) -> None:
    price = Price(input=pin, output=pout, cache_read=pread, cache_write=pwrite)
    c = cost_of(Usage(input_tokens=i, output_tokens=o, cache_read_tokens=r, cache_write_tokens=w), price)
    exact = (i * pin + o * pout + r * pread + w * pwrite) / D(1_000_000)
    assert c.total_usd == exact  # six-decimal prices per million are exact at the pico-dollar
    assert to_pico(c.total_usd) == to_pico(c.input_usd) + to_pico(c.output_usd) + to_pico(c.cache_usd)
    parts = [cost_of(Usage(input_tokens=i), price), cost_of(Usage(output_tokens=o), price),
             cost_of(Usage(cache_read_tokens=r, cache_write_tokens=w), price)]
    assert sum((p.total_usd for p in parts), D(0)) == c.total_usd


@given(st.integers(min_value=0, max_value=10**20))
def test_pico_round_trip(p: int) -> None:
    assert to_pico(from_pico(p)) == p
    assert D(usd_str(p)) * 10**12 == p
