"""Server-side SVG for the dashboard: likelihood bars, bar charts, the pool-state bar.

Everything is drawn as inline SVG markup with presentation attributes and CSS classes (no
`style` attributes, no script), so the pages work under a strict `style-src 'self'` policy and
without JavaScript. Markup is built only from literal templates with `Markup.format`, which
escapes every value put into it, so a source name cannot inject markup. Each chart is a
`role="img"` with a title and a description, and the pages give the same figures as a table.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

CHART_W, CHART_H = 640, 240  # viewBox units; CSS scales the chart to the column width
PAD_L, PAD_R, PAD_T, PAD_B = 40, 12, 14, 30  # room for the y ticks and the x labels
BAR_GAP = 0.18  # fraction of a slot left empty between bars, so neighbours stay distinct
HEADROOM = 1.1  # the tallest bar or the reference line stops short of the top edge
HIGH, MEDIUM = 0.8, 0.5  # likelihood bands of the bar colour; the call log filter uses the same
HOURS = [f"{h:02d}" for h in range(24)]
HIST_LABELS = [f"{10 * i}-{10 * (i + 1)}%" for i in range(10)]
_EMPTY = Markup("")


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
    return Markup(
        '<span class="lk"><svg class="lk-bar" viewBox="0 0 100 10" preserveAspectRatio="none"'
        ' aria-hidden="true" focusable="false"><rect class="lk-track" width="100" height="10"/>'
        '<rect class="lk-fill lk-{}" width="{}" height="10"/></svg>'
        '<span class="lk-num">{}%</span></span>',
    ).format(band(likelihood), _num(pct), f"{pct:.0f}")


def _y(value: float, top: float) -> float:
    return PAD_T + (CHART_H - PAD_T - PAD_B) * (1 - value / top)


def _slot(count: int) -> float:
    return (CHART_W - PAD_L - PAD_R) / max(1, count)


def _bars(values: Sequence[float], top: float, labels: Sequence[str]) -> list[Markup]:
    slot = _slot(len(values))
    bar = Markup('<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title>'
                 '</rect>')
    out = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        y = _y(value, top)
        out.append(bar.format(_num(PAD_L + i * slot + slot * BAR_GAP / 2), _num(y),
                              _num(slot * (1 - BAR_GAP)), _num(CHART_H - PAD_B - y), label,
                              _num(value)))
    return out


def _x_labels(labels: Sequence[str], every: int) -> list[Markup]:
    slot = _slot(len(labels))
    tick = Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>')
    return [tick.format(_num(PAD_L + (i + 0.5) * slot), CHART_H - 10, label)
            for i, label in enumerate(labels) if i % every == 0]


def _y_axis(top: float) -> list[Markup]:
    axis = Markup('<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>')
    tick = Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>')
    peak = top / HEADROOM
    return [axis.format(PAD_L, CHART_H - PAD_B, CHART_W - PAD_R, CHART_H - PAD_B)] + [
        tick.format(PAD_L - 6, _num(_y(v, top) + 4), _num(v)) for v in (0.0, peak / 2, peak)]


def _ref_line(ref: float, top: float, label: str) -> list[Markup]:
    y = _y(ref, top)
    return [Markup('<line class="ref" x1="{}" y1="{}" x2="{}" y2="{}"/>').format(
                PAD_L, _num(y), CHART_W - PAD_R, _num(y)),
            Markup('<text class="ref-label" x="{}" y="{}" text-anchor="end">{}</text>').format(
                CHART_W - PAD_R, _num(y - 5), label)]


def bar_chart(values: Sequence[float], labels: Sequence[str], *, title: str, desc: str,
              ref: float | None = None, ref_label: str = "", label_every: int = 1) -> Markup:
    """A bar per value, with an optional horizontal reference line (e.g. the pool size)."""
    top = max([*values, ref or 0.0, 1.0]) * HEADROOM
    head = Markup('<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
                  '<title>{}</title><desc>{}</desc>').format(CHART_W, CHART_H, title, title,
                                                            desc)
    ref_parts = _ref_line(ref, top, ref_label) if ref is not None else []
    return _EMPTY.join([head, *_y_axis(top), *_bars(values, top, labels),
                        *_x_labels(labels, label_every), *ref_parts, Markup("</svg>")])


def reserved_by_hour(values: Sequence[float], pool_size: int, source: str) -> Markup:
    """Reserved numbers at each hour of the day (UTC) against the pool size."""
    return bar_chart(
        values, HOURS[:len(values)],
        title=f"{source}: reserved numbers by hour against the pool size",
        desc=f"Numbers reserved in each hour of the day (UTC); the line is the pool of "
             f"{pool_size}.", ref=float(pool_size), ref_label=f"pool {pool_size}", label_every=3)


def likelihood_histogram(counts: Sequence[float], source: str) -> Markup:
    """Calls by the likelihood of their attached session, in ten bins over 0..100%."""
    return bar_chart(counts, HIST_LABELS[:len(counts)],
                     title=f"{source}: calls by likelihood of the match",
                     desc="Calls in each 10% likelihood band.", label_every=2)


def pool_bar(reserved: int, cooling: int, free: int) -> Markup:
    """One stacked bar: reserved, cooling and free numbers of a pool, left to right."""
    total = max(1, reserved + cooling + free)
    rect = Markup('<rect class="pool-{}" x="{}" width="{}" height="10"/>')
    x, parts = 0.0, []
    for css, count in (("reserved", reserved), ("cooling", cooling), ("free", free)):
        width = 100 * count / total
        parts.append(rect.format(css, _num(x), _num(width)))
        x += width
    return _EMPTY.join([Markup('<svg class="pool-bar" viewBox="0 0 100 10"'
                               ' preserveAspectRatio="none" aria-hidden="true"'
                               ' focusable="false">'), *parts, Markup("</svg>")])
