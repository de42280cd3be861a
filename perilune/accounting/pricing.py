"""Exact cost of one request, from canonical usage and catalog prices, in integer pico-USD.

Catalog prices are Decimal USD per million tokens (per image, per audio minute); each is turned once
(cached) into an integer number of atto-USD (1e-18 USD) per token, so that a request's cost is integer
arithmetic: ``tokens x atto`` rounded half-up to the pico-dollar. Every price with up to six decimals
per million tokens is a whole number of pico-USD per token, so that rounding never changes anything;
prices with up to twelve decimals (e.g. after a discount) are still exact to the pico-dollar, rounded
the way Decimal's ROUND_HALF_UP would. Decimal stays at the edges: the catalog, audio seconds, display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from perilune.accounting.catalog import Price
from perilune.schema.canonical import Cost, Usage

MILLION = Decimal(1_000_000)
PICO = Decimal("1e-12")
SIXTY = Decimal(60)
ZERO = Decimal(0)
ATTO_PER_PICO = 1_000_000  # 1 pico-USD = 1e6 atto-USD


def quantize(amount: Decimal) -> Decimal:
    """Round to the pico-dollar (1e-12 USD), the unit money is stored in."""
    return amount.quantize(PICO, rounding=ROUND_HALF_UP)


def to_pico(amount: Decimal) -> int:
    as_pico = amount.scaleb(12)
    if as_pico == as_pico.to_integral_value():  # already on the pico grid (every cost_of result is)
        return int(as_pico)
    return int(quantize(amount).scaleb(12))


def from_pico(pico: int) -> Decimal:
    """Pico-USD as a Decimal without trailing zeros (and never in exponent form when printed)."""
    if not pico:
        return ZERO
    d = Decimal(pico).scaleb(-12).normalize()
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d


def usd_str(pico: int) -> str:
    """Pico-USD as a plain decimal string, e.g. ``"12.5"`` or ``"0.000000075"`` (integer arithmetic, and
    remembered: the usage extension of every answer prints five, mostly the same few amounts)."""
    got = _USD_STRS.get(pico)
    if got is None:
        whole, frac = divmod(-pico if pico < 0 else pico, 1_000_000_000_000)
        sign = "-" if pico < 0 else ""
        got = f"{sign}{whole}.{frac:012d}".rstrip("0") if frac else f"{sign}{whole}"
        if len(_USD_STRS) >= _USD_STRS_MAX:
            _USD_STRS.clear()
        _USD_STRS[pico] = got
    return got


_USD_STRS: dict[int, str] = {}
_USD_STRS_MAX = 4096


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """A :class:`Price` in integer atto-USD per token (per image for ``image``); ``None`` = not priced."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    image: int | None
    audio_minute: Decimal | None  # audio seconds are Decimal already; priced at the edge


def _atto_per_token(per_million: Decimal) -> int:
    atto = per_million.scaleb(12)  # USD per 1e6 tokens -> 1e-18 USD per token
    if atto != atto.to_integral_value():  # more than twelve decimals per million: keep the pico grid
        atto = quantize(per_million).scaleb(12)
    return int(atto)


_BY_ID: dict[int, tuple[Price, TokenPrice]] = {}  # the entry holds the Price: its id cannot be reused


def token_price(price: Price) -> TokenPrice:
    """The integer form of ``price``, cached by identity first (hashing six Decimals costs more than the
    arithmetic), then by value (a discounted model's price is a new object each time)."""
    hit = _BY_ID.get(id(price))
    if hit is not None and hit[0] is price:
        return hit[1]
    tp = _token_price(price)
    if len(_BY_ID) >= 4096:
        _BY_ID.clear()
    _BY_ID[id(price)] = (price, tp)
    return tp


@lru_cache(maxsize=4096)
def _token_price(price: Price) -> TokenPrice:
    pin = _atto_per_token(price.input) if price.input is not None else 0
    return TokenPrice(
        input=pin,
        output=_atto_per_token(price.output) if price.output is not None else 0,
        cache_read=_atto_per_token(price.cache_read) if price.cache_read is not None else pin,
        cache_write=_atto_per_token(price.cache_write) if price.cache_write is not None else pin,
        image=to_pico(price.per_image) if price.per_image is not None else None,
        audio_minute=price.per_audio_minute,
    )


def _pico(atto: int) -> int:
    """atto-USD (>= 0) to pico-USD, rounded half up."""
    return (atto + ATTO_PER_PICO // 2) // ATTO_PER_PICO


def cost_of(usage: Usage, price: Price) -> Cost:
    """Cost per provider semantics, already normalised into :class:`Usage`, in pico-USD.

    Cache reads are charged at ``cache_read`` (input price when the model has no cache price); cache
    writes at ``cache_write`` (input price likewise). Reasoning tokens are part of output.
    """
    p = token_price(price)
    unit = 0
    if usage.images and p.image is not None:
        unit += usage.images * p.image
    if usage.audio_seconds and p.audio_minute is not None:
        unit += to_pico(usage.audio_seconds * p.audio_minute / SIXTY)
    return Cost(
        input_pusd=_pico(usage.input_tokens * p.input),
        output_pusd=_pico(usage.output_tokens * p.output),
        cache_pusd=_pico(usage.cache_read_tokens * p.cache_read + usage.cache_write_tokens * p.cache_write),
        unit_pusd=unit,
    )


def usd_decimal(amount: Decimal) -> str:
    """The one shape of money in every API response: a plain decimal string, exact to the pico-dollar,
    never in exponent notation and without trailing zeros (``"0.000006"``, ``"12.5"``, ``"0"``,
    ``"-1.5"``). A JSON float would print 6e-06 and lose digits past about 16."""
    return usd_str(to_pico(amount))


# The former name: it returned a JSON number; it now returns the decimal string, so every caller
# (the usage extension in gateway/relay.py among them) emits the one shape.
usd_number = usd_decimal
