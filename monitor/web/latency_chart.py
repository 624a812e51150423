"""Latency as small SVG charts drawn on the server: one per check, each on its own scale, so a slow check never
flattens the others. The line is the mean response time of the probes that succeeded; an hour with failures gets
a ✕ on the failures' row above the plot, and an hour without any success is a gap in the line — a failed probe is
never drawn as a fast (or slow) response."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

from ..i18n import PARIS, Lang, format_decimal, translate, translate_plural

__all__ = ["Hour", "Series", "failure_sample", "latency_chart", "line_sample"]

WIDTH, HEIGHT = 340, 150
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 30, 24  # TOP holds the failures' row
FAIL_Y = 13
TICK_HOURS = 6


@dataclass(frozen=True)
class Hour:
    """One hour of a check: its start, the mean response time of its successful probes (None: none succeeded),
    how many probes failed."""

    start: datetime
    ok_mean_ms: float | None
    failures: int


@dataclass(frozen=True)
class Series:
    label: str
    hours: list[Hour]  # oldest first


def _nice_top(value: float) -> float:
    for top in (50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 30000, 60000):
        if value <= top:
            return float(top)
    return value


def _cross(x: float, y: float, size: float = 4.5) -> str:
    return (
        f'<path d="M{x - size:.1f} {y - size:.1f}L{x + size:.1f} {y + size:.1f}'
        f'M{x + size:.1f} {y - size:.1f}L{x - size:.1f} {y + size:.1f}"/>'
    )


def _ms(value: float, lang: Lang) -> str:
    return translate(lang, "%(ms)s ms") % {"ms": format_decimal(round(value), lang)}


def _tick(value: float, top: float, lang: Lang) -> str:
    """An axis label: in ms up to 500 ms, in seconds above (`2,5 s`: short enough for the axis on a phone)."""
    if top < 1000:
        return _ms(value, lang)
    return translate(lang, "%(seconds)s s") % {"seconds": format_decimal(value / 1000, lang)}


def _segments(hours: list[Hour]) -> list[list[Hour]]:
    """Runs of consecutive hours with a successful probe: the line breaks at an hour without one or without results."""
    runs: list[list[Hour]] = []
    previous: Hour | None = None
    for hour in hours:
        if hour.ok_mean_ms is None:
            previous = None
            continue
        if previous is None or hour.start - previous.start > timedelta(hours=1):
            runs.append([])
        runs[-1].append(hour)
        previous = hour
    return runs


def describe(series: Series, lang: Lang) -> str:
    """The chart in words (its SVG description): the range of the means, and the hours with failures."""
    means = [h.ok_mean_ms for h in series.hours if h.ok_mean_ms is not None]
    failed = sum(1 for h in series.hours if h.failures)
    parts = []
    if means:
        parts.append(
            translate(lang, "Mean response time of the successful probes, per hour: from %(low)s to %(high)s.")
            % {"low": _ms(min(means), lang), "high": _ms(max(means), lang)}
        )
    else:
        parts.append(translate(lang, "No probe succeeded in this period."))
    if failed:
        parts.append(
            translate_plural(lang, "%(hours)s hour with failures (✕).", "%(hours)s hours with failures (✕).", failed)
            % {"hours": failed}
        )
    else:
        parts.append(translate(lang, "No failure."))
    return " ".join(parts)


def latency_chart(series: Series, start: datetime, end: datetime, lang: Lang, chart_id: str) -> Markup:
    """An accessible SVG (role img, title, desc in words); the page gives the same numbers as a table too."""
    span = (end - start).total_seconds() or 1.0
    means = [h.ok_mean_ms for h in series.hours if h.ok_mean_ms is not None]
    top = _nice_top(max(means, default=0.0) * 1.1 or 100.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    failures = translate(lang, "failures")

    def x_of(moment: datetime) -> float:
        return LEFT + plot_w * min(max((moment - start).total_seconds() / span, 0.0), 1.0)

    def y_of(ms: float) -> float:
        return TOP + plot_h * (1 - min(ms / top, 1.0))

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(series.label)}</title>'
        f'<desc id="{chart_id}-d">{escape(describe(series, lang))}</desc>',
        '<g class="grid" aria-hidden="true">',
        f'<text class="fail-label" x="{LEFT - 6}" y="{FAIL_Y + 4}" text-anchor="end">{escape(failures)}</text>',
    ]
    for i in range(3):
        value = top * i / 2
        y = y_of(value)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_tick(value, top, lang))}</text>')
    tick = start.astimezone(PARIS).replace(minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start and tick.hour % TICK_HOURS == 0:
            x = x_of(tick)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{tick:%H:%M}</text>')
        tick += timedelta(hours=1)
    out.append("</g>")
    half = timedelta(minutes=30)
    out.append('<g class="series" aria-hidden="true">')
    for run in _segments(series.hours):
        points = [(x_of(h.start + half), y_of(h.ok_mean_ms or 0.0)) for h in run]
        if len(points) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f} {y:.1f}" for i, (x, y) in enumerate(points))
            out.append(f'<path class="line" d="{path}"/>')
        out.extend(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5"/>' for x, y in points)
    out.append("</g>")
    failed = [h for h in series.hours if h.failures]
    if failed:
        out.append('<g class="fails" aria-hidden="true">')
        out.extend(_cross(x_of(h.start + half), FAIL_Y) for h in failed)
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - numbers and escaped labels only


def line_sample() -> Markup:
    """The legend's sample of a chart's line (mean response time of the successes)."""
    return Markup(
        '<svg class="legend-sample series" viewBox="0 0 32 12" width="32" height="12" aria-hidden="true">'
        '<path class="line" d="M0 6L32 6"/><circle class="point" cx="16" cy="6" r="2.5"/></svg>'
    )


def failure_sample() -> Markup:
    """The legend's sample of a failure mark."""
    return Markup(  # noqa: S704 - constants only
        '<svg class="legend-sample fails" viewBox="0 0 12 12" width="12" height="12" aria-hidden="true">'
        f"{_cross(6, 6)}</svg>"
    )
