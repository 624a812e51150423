"""A latency chart drawn on the server as SVG: one line per flow, told apart by dash and marker, not colour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

from ..i18n import PARIS

__all__ = ["Series", "latency_chart"]

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36
DASHES = ("", "6 4", "2 3", "10 3 2 3", "1 6")
MARKERS = ("circle", "square", "diamond", "triangle", "cross")


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[datetime, float]]  # (hour start, mean latency in ms)


def _nice_top(value: float) -> float:
    for top in (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 30000, 60000):
        if value <= top:
            return float(top)
    return value


def _marker(kind: str, x: float, y: float) -> str:
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>'
    if kind == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6"/>'
    if kind == "diamond":
        return f'<path d="M{x:.1f} {y - 4:.1f}L{x + 4:.1f} {y:.1f}L{x:.1f} {y + 4:.1f}L{x - 4:.1f} {y:.1f}Z"/>'
    if kind == "triangle":
        return f'<path d="M{x:.1f} {y - 4:.1f}L{x + 4:.1f} {y + 3:.1f}L{x - 4:.1f} {y + 3:.1f}Z"/>'
    return (
        f'<path d="M{x - 3:.1f} {y - 3:.1f}L{x + 3:.1f} {y + 3:.1f}M{x + 3:.1f} {y - 3:.1f}L{x - 3:.1f} {y + 3:.1f}"/>'
    )


def latency_chart(series: list[Series], start: datetime, end: datetime, title: str, desc: str, chart_id: str) -> Markup:
    """An accessible SVG (role img, title, desc); the page gives the same numbers as a table beside it."""
    span = (end - start).total_seconds() or 1.0
    top = _nice_top(max((ms for s in series for _, ms in s.points), default=0.0) * 1.1 or 100.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(moment: datetime) -> float:
        return LEFT + plot_w * min(max((moment - start).total_seconds() / span, 0.0), 1.0)

    def y_of(ms: float) -> float:
        return TOP + plot_h * (1 - min(ms / top, 1.0))

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>',
        '<g class="grid" aria-hidden="true">',
    ]
    for i in range(5):
        value = top * i / 4
        y = y_of(value)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g} ms</text>')
    tick = start.astimezone(PARIS).replace(minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start and tick.hour % 6 == 0:
            x = x_of(tick)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{tick:%H:%M}</text>')
        tick += timedelta(hours=1)
    out.append("</g>")
    for index, one in enumerate(series):
        dash, marker = DASHES[index % len(DASHES)], MARKERS[index % len(MARKERS)]
        points = [(x_of(at), y_of(ms)) for at, ms in one.points]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series s{index % len(DASHES)}" aria-hidden="true">')
        if len(points) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f} {y:.1f}" for i, (x, y) in enumerate(points))
            out.append(f'<path class="line" d="{path}" fill="none"{dash_attr}/>')
        out.extend(_marker(marker, x, y) for x, y in points[:: max(1, len(points) // 12)])
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - numbers and escaped labels only


def legend_marker(index: int) -> Markup:
    """The small sample of series `index` shown in the legend (dash and marker, as in the chart)."""
    dash, marker = DASHES[index % len(DASHES)], MARKERS[index % len(MARKERS)]
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return Markup(  # noqa: S704 - constants only
        f'<svg class="legend-sample s{index % len(DASHES)}" viewBox="0 0 32 12" width="32" height="12"'
        ' aria-hidden="true">'
        f'<path class="line" d="M0 6L32 6" fill="none"{dash_attr}/>{_marker(marker, 16, 6)}</svg>'
    )
