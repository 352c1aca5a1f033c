"""Server-side SVG for the dashboard: likelihood bars, bar charts, the pool-state bar.

Everything is drawn as inline SVG markup with presentation attributes and CSS classes (no
`style` attributes, no script), so the pages work under a strict `style-src 'self'` policy and
without JavaScript. Text that reaches the markup is escaped here; callers get `Markup` back.
Each chart is an `role="img"` with a title and a description, and the pages print the same
figures as text or a table next to it for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

CHART_W, CHART_H = 640, 240  # viewBox units; CSS scales the chart to the column width
PAD_L, PAD_R, PAD_T, PAD_B = 40, 12, 14, 30  # room for the y ticks and the x labels
BAR_GAP = 0.18  # fraction of a slot left empty between bars, so neighbours stay distinct
HIGH, MEDIUM = 0.8, 0.5  # likelihood bands of the bar colour; the call log filter uses the same


def band(likelihood: float | None) -> str:
    """"high", "medium", "low", or "none" (no match) for a likelihood."""
    if likelihood is None:
        return "none"
    if likelihood >= HIGH:
        return "high"
    return "medium" if likelihood >= MEDIUM else "low"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def likelihood_bar(likelihood: float | None) -> Markup:
    """A small horizontal bar and the percentage (the seed product's "bar chart icon")."""
    if likelihood is None:
        return Markup('<span class="lk lk-none">no match</span>')
    pct = max(0.0, min(1.0, likelihood)) * 100
    svg = (f'<svg class="lk-bar" viewBox="0 0 100 10" preserveAspectRatio="none" '
           f'aria-hidden="true" focusable="false"><rect class="lk-track" width="100" height="10"/>'
           f'<rect class="lk-fill lk-{band(likelihood)}" width="{_num(pct)}" height="10"/></svg>')
    return Markup(f'<span class="lk">{svg}<span class="lk-num">{pct:.0f}%</span></span>')


def _scale(values: Sequence[float], ref: float | None) -> float:
    top = max([*values, ref or 0.0, 1.0])
    return top * 1.1  # headroom so the tallest bar and the reference line do not touch the top


def _y(value: float, top: float) -> float:
    return PAD_T + (CHART_H - PAD_T - PAD_B) * (1 - value / top)


def _bars(values: Sequence[float], top: float, labels: Sequence[str]) -> list[str]:
    slot = (CHART_W - PAD_L - PAD_R) / max(1, len(values))
    out = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        x, y = PAD_L + i * slot + slot * BAR_GAP / 2, _y(value, top)
        h = CHART_H - PAD_B - y
        out.append(f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(slot * (1 - BAR_GAP))}"'
                   f' height="{_num(h)}"><title>{escape(label)}: {_num(value)}</title></rect>')
    return out


def _x_labels(labels: Sequence[str], every: int) -> list[str]:
    slot = (CHART_W - PAD_L - PAD_R) / max(1, len(labels))
    return [f'<text class="tick" x="{_num(PAD_L + (i + 0.5) * slot)}" y="{CHART_H - 10}"'
            f' text-anchor="middle">{escape(label)}</text>'
            for i, label in enumerate(labels) if i % every == 0]


def _y_axis(top: float) -> list[str]:
    out = [f'<line class="axis" x1="{PAD_L}" y1="{CHART_H - PAD_B}" x2="{CHART_W - PAD_R}"'
           f' y2="{CHART_H - PAD_B}"/>']
    for value in (0.0, top / 1.1 / 2, top / 1.1):
        y = _y(value, top)
        out.append(f'<text class="tick" x="{PAD_L - 6}" y="{_num(y + 4)}" text-anchor="end">'
                   f'{_num(value)}</text>')
    return out


def _ref_line(ref: float, top: float, label: str) -> list[str]:
    y = _y(ref, top)
    return [f'<line class="ref" x1="{PAD_L}" y1="{_num(y)}" x2="{CHART_W - PAD_R}"'
            f' y2="{_num(y)}"/>',
            f'<text class="ref-label" x="{CHART_W - PAD_R}" y="{_num(y - 5)}"'
            f' text-anchor="end">{escape(label)}</text>']


def bar_chart(values: Sequence[float], labels: Sequence[str], *, title: str, desc: str,
              ref: float | None = None, ref_label: str = "", label_every: int = 1) -> Markup:
    """A bar per value, with an optional horizontal reference line (e.g. the pool size)."""
    top = _scale(values, ref)
    parts = [f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img"'
             f' aria-label="{escape(title)}"><title>{escape(title)}</title>'
             f'<desc>{escape(desc)}</desc>', *_y_axis(top), *_bars(values, top, labels),
             *_x_labels(labels, label_every)]
    if ref is not None:
        parts += _ref_line(ref, top, ref_label)
    parts.append("</svg>")
    return Markup("".join(parts))


HOURS = [f"{h:02d}" for h in range(24)]
HIST_LABELS = [f"{10 * i}-{10 * (i + 1)}%" for i in range(10)]


def reserved_by_hour(values: Sequence[float], pool_size: int, source: str) -> Markup:
    """Reserved numbers at each hour of the day (UTC) against the pool size."""
    return bar_chart(
        values, HOURS, title=f"{source}: reserved numbers by hour against the pool size",
        desc=f"Mean numbers reserved in each hour (UTC); the line is the pool of {pool_size}.",
        ref=float(pool_size), ref_label=f"pool {pool_size}", label_every=3)


def likelihood_histogram(counts: Sequence[float], source: str) -> Markup:
    """Calls by the likelihood of their attached session, in ten bins over 0..100%."""
    return bar_chart(counts, HIST_LABELS[:len(counts)],
                     title=f"{source}: calls by likelihood of the match",
                     desc="Number of calls in each 10% likelihood band.", label_every=2)


def pool_bar(reserved: int, cooling: int, free: int) -> Markup:
    """One stacked bar: reserved, cooling and free numbers of a pool, left to right."""
    total = max(1, reserved + cooling + free)
    x, parts = 0.0, []
    for css, count in (("reserved", reserved), ("cooling", cooling), ("free", free)):
        width = 100 * count / total
        parts.append(f'<rect class="pool-{css}" x="{_num(x)}" width="{_num(width)}"'
                     f' height="10"/>')
        x += width
    return Markup(f'<svg class="pool-bar" viewBox="0 0 100 10" preserveAspectRatio="none"'
                  f' aria-hidden="true" focusable="false">{"".join(parts)}</svg>')
