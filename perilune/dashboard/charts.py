"""Hand-written SVG charts for the dashboard: stacked bars over time. Rendered on the server, so a
chart is plain markup (no script, nothing fetched from anywhere), scales with its container through
its viewBox, and says what each bar is in a ``<title>`` tooltip."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# Okabe-Ito (colour-blind safe), then greys for "other".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]
    color: str


def nice_max(v: float) -> float:
    """A round number >= v for the top of the axis."""
    if v <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def colours_for(ranked_names: Sequence[str], limit: int = 6) -> dict[str, str]:
    """One colour per name for every chart of a page: the ``limit`` first names (ranked once, e.g. by
    requests over the whole range) get the palette in order; all others are "other" (grey)."""
    return {name: PALETTE[i % 7] for i, name in enumerate(ranked_names[:limit])}


def top_series(values: dict[str, list[float]], limit: int = 6, colours: dict[str, str] | None = None) -> list[Series]:
    """The series of the named (coloured) names, in that order; the rest summed as "other". Without
    ``colours``, the ``limit`` largest series by total."""
    if colours is None:
        ranked = sorted(values, key=lambda name: -sum(values[name]))
        colours = colours_for(ranked, limit)
    out = [Series(name, values[name], colour) for name, colour in colours.items() if name in values]
    rest = [v for name, v in values.items() if name not in colours]
    if rest:
        n = len(rest[0])
        out.append(Series(f"other ({len(rest)})", [sum(v[i] for v in rest) for i in range(n)], PALETTE[7]))
    return out


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *, title: str,
                 fmt: Callable[[float], str], width: int = 480, height: int = 240) -> Markup:
    left, right, top, bottom = 66, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ymax = nice_max(max(totals, default=0.0))
    slot = plot_w / n
    bar = max(slot * 0.72, 1.0)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
             f"<title>{escape(title)}</title>"]
    for i in range(5):  # gridlines and y labels
        v = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="ylabel" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(fmt(v))}</text>")
    every = max(1, math.ceil(n / 6))
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for s in series:
            v = s.values[i]
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                         f'fill="{s.color}"><title>{escape(label)} · {escape(s.name)}: '
                         f"{escape(fmt(v))}</title></rect>")
        if i % every == 0:
            parts.append(f'<text class="xlabel" x="{left + i * slot + slot / 2:.1f}" y="{height - 8}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
                 f'y2="{top + plot_h}"/>')
    if not any(totals):
        parts.append(f'<text class="empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
                     'text-anchor="middle">no data in this range</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
