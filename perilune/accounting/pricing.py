"""Exact cost of one request, from canonical usage and catalog prices. Decimal throughout."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from perilune.accounting.catalog import Price
from perilune.schema.canonical import Cost, Usage

MILLION = Decimal(1_000_000)
PICO = Decimal("1e-12")
SIXTY = Decimal(60)
ZERO = Decimal(0)


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
    """Pico-USD as a plain decimal string, e.g. ``"12.5"`` or ``"0.000000075"``."""
    return format(from_pico(pico), "f")


def cost_of(usage: Usage, price: Price) -> Cost:
    """Cost per provider semantics, already normalised into :class:`Usage`.

    Cache reads are charged at ``cache_read`` (input price when the model has no cache price); cache
    writes at ``cache_write`` (input price likewise). Reasoning tokens are part of output.
    """
    pin = price.input or ZERO
    cache_read = price.cache_read if price.cache_read is not None else pin
    cache_write = price.cache_write if price.cache_write is not None else pin
    unit = ZERO
    if usage.images and price.per_image is not None:
        unit += usage.images * price.per_image
    if usage.audio_seconds and price.per_audio_minute is not None:
        unit += usage.audio_seconds * price.per_audio_minute / SIXTY
    return Cost(
        input_usd=quantize(usage.input_tokens * pin / MILLION),
        output_usd=quantize(usage.output_tokens * (price.output or ZERO) / MILLION),
        cache_usd=quantize((usage.cache_read_tokens * cache_read + usage.cache_write_tokens * cache_write)
                           / MILLION),
        unit_usd=quantize(unit),
    )


def usd_decimal(amount: Decimal) -> str:
    """The one shape of money in every API response: a plain decimal string, exact to the pico-dollar,
    never in exponent notation and without trailing zeros (``"0.000006"``, ``"12.5"``, ``"0"``,
    ``"-1.5"``). A JSON float would print 6e-06 and lose digits past about 16."""
    return usd_str(to_pico(amount))


# The former name: it returned a JSON number; it now returns the decimal string, so every caller
# (the usage extension in gateway/relay.py among them) emits the one shape.
usd_number = usd_decimal
