"""Bar charts drawn on the server as SVG (``templates/_charts.html`` renders them).

No chart library and no script: the page's CSP allows none from elsewhere, and a bar chart is a
handful of rectangles. Geometry is computed here, colours come from the stylesheet (classes
``ok`` / ``fail``), so light and dark themes apply and nothing needs ``style=`` attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gatehouse.domain.dashboard import HourBucket


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    #: CSS class: ``ok`` or ``fail``
    kind: str
    #: the tooltip (an SVG ``<title>``)
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    #: one sentence for screen readers (``aria-label``) and the caption
    summary: str
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    #: horizontal grid lines (y positions)
    grid: list[float] = field(default_factory=list)


def _nice_max(value: int) -> int:
    """The axis top: ``value`` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if top * step >= value:
                return top * step
        top *= 10


def hourly(hours: Sequence[HourBucket]) -> Chart:
    """Stacked bars per hour: succeeded (``ok``) under failed (``fail``); hour labels every 6 h."""
    width, height, left, bottom, top = 720, 180, 36, 24, 10
    plot_h = height - bottom - top
    slot = (width - left) / max(len(hours), 1)
    peak = _nice_max(max((h.total for h in hours), default=0))
    total = sum(h.total for h in hours)
    failed = sum(h.failed for h in hours)
    chart = Chart(
        width,
        height,
        f"{total} sign-in{'' if total == 1 else 's'} in the last 24 hours, {failed} failed.",
    )
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        chart.grid.append(y)
        chart.labels.append(Label(left - 6, y + 4, f"{round(peak * fraction):g}", "end"))
    for i, h in enumerate(hours):
        x = left + i * slot + 2
        span = f"{h.start:%H}:00 to {(h.start.hour + 1) % 24:02d}:00 UTC"
        title = f"{span}: {h.succeeded} succeeded, {h.failed} failed"
        ok_h = plot_h * h.succeeded / peak
        fail_h = plot_h * h.failed / peak
        base = top + plot_h
        if h.succeeded:
            chart.bars.append(Bar(x, base - ok_h, slot - 4, ok_h, "ok", title))
        if h.failed:
            chart.bars.append(Bar(x, base - ok_h - fail_h, slot - 4, fail_h, "fail", title))
        if i % 6 == 0:
            chart.labels.append(Label(x + (slot - 4) / 2, height - 6, f"{h.start:%H}:00"))
    return chart


def by_reason(failures: Sequence[tuple[str, int]], shown: int = 6) -> Chart:
    """One horizontal bar per failure reason, the most frequent first, with its count."""
    rows = list(failures[:shown])
    row_h, label_w, width = 30, 170, 440  # drawn at about its own size in a half-width card
    height = max(row_h * len(rows), row_h)
    peak = max((n for _r, n in rows), default=1)
    total = sum(n for _r, n in failures)
    chart = Chart(
        width,
        height,
        f"{total} failed sign-in{'' if total == 1 else 's'} in the last 24 hours"
        + (", by reason: " + ", ".join(f"{r} {n}" for r, n in rows) + "." if rows else "."),
    )
    room = width - label_w - 50
    for i, (reason, n) in enumerate(rows):
        y = i * row_h
        bar_w = max(room * n / peak, 2.0)
        chart.labels.append(Label(label_w - 8, y + row_h / 2 + 5, reason, "end"))
        chart.bars.append(Bar(label_w, y + 6, bar_w, row_h - 12, "fail", f"{reason}: {n}"))
        chart.labels.append(Label(label_w + bar_w + 6, y + row_h / 2 + 5, str(n), "start"))
    return chart
