"""Outcome chart maths: patient-reported scores over time, scaled into SVG coordinates.

Pure functions of dates and numbers (no Flask, no database). The follow-up page renders the
geometry returned here as inline SVG, with no script, next to a table of the same figures.
Each panel has its own scale (pain 0-10, ODI 0-100 %, minutes), one shared time axis, the
baseline from the intake as a dashed line, and the procedure dates as markers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 30, 14, 34  # margins around the plot area
MINUTE_SCALES = (30, 60, 120, 180, 240)
# Two series per panel at most: told apart by colour, dash pattern and marker shape alike.
STYLES = (("#1b5e9e", "", "circle"), ("#a8431b", "6 4", "square"))


@dataclass(frozen=True)
class Measure:
    """One plotted score: its key in the check-in scores and in the baseline."""

    key: str
    label: str


@dataclass(frozen=True)
class PanelSpec:
    id: str
    title: str
    measures: tuple[Measure, ...]
    maximum: int | None  # None: fit the data (minutes)


PANELS = (
    PanelSpec(
        "pain",
        "Pain, 0 to 10 (lower is better)",
        (
            Measure("nprs_back", "Back pain"),
            Measure("nprs_leg", "Leg pain"),
        ),
        10,
    ),
    PanelSpec("odi", "Disability, ODI % (lower is better)", (Measure("odi_pct", "ODI"),), 100),
    PanelSpec(
        "walking",
        "Walking and standing, minutes (higher is better)",
        (
            Measure("walk_minutes", "Walking minutes"),
            Measure("stand_minutes", "Standing minutes"),
        ),
        None,
    ),
)


@dataclass(frozen=True)
class Observation:
    """The scores of one check-in, on the clinic-local day it was answered."""

    day: date
    scores: Mapping[str, object]
    label: str = ""
    baseline: Mapping[str, object] = field(default_factory=dict)  # its own procedure's


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class PlotPoint:
    x: float
    y: float
    day: date
    value: float
    label: str


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    colour: str
    dash: str
    shape: str
    points: tuple[PlotPoint, ...]
    baseline: float | None
    baseline_y: float | None

    @property
    def polyline(self) -> str:
        """The SVG ``points`` attribute of the line through the points."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    maximum: float
    left: float
    top: float
    right: float
    bottom: float
    width: int = WIDTH
    height: int = HEIGHT
    y_ticks: tuple[Tick, ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    markers: tuple[Tick, ...] = ()
    lines: tuple[Line, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not any(line.points or line.baseline is not None for line in self.lines)


def number(value: object) -> float | None:
    """A plottable number, or None for anything else (missing, text, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None  # NaN is not a score


def scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    """Map ``value`` from [lo, hi] onto [out_lo, out_hi] linearly, clamped to the range."""
    if hi == lo:
        return (out_lo + out_hi) / 2
    value = min(max(value, min(lo, hi)), max(lo, hi))
    return out_lo + (value - lo) * (out_hi - out_lo) / (hi - lo)


def nice_ceiling(value: float, steps: Sequence[int] = MINUTE_SCALES) -> int:
    """The smallest step at or above ``value`` (the last step if none is)."""
    return next((step for step in steps if value <= step), steps[-1])


def value_ticks(maximum: float, count: int = 5) -> list[float]:
    """``count + 1`` evenly spaced values from 0 to ``maximum``."""
    return [maximum * i / count for i in range(count + 1)]


def time_span(days: Iterable[date]) -> tuple[date, date]:
    """The first and last day, at least a week apart so one point sits mid-axis, not on it."""
    days = sorted(days)
    if not days:
        raise ValueError("no days to span")
    start, end = days[0], days[-1]
    if (end - start).days < 7:
        start, end = start - timedelta(days=3), start + timedelta(days=4)
    return start, end


def date_ticks(start: date, end: date, count: int = 5) -> list[date]:
    """Evenly spaced days from ``start`` to ``end`` inclusive, without repeats."""
    span = (end - start).days
    out: list[date] = []
    for i in range(count + 1):
        day = start + timedelta(days=round(span * i / count))
        if day not in out:
            out.append(day)
    return out


def date_label(day: date, start: date, end: date) -> str:
    return f"{day:%b %Y}" if (end - start).days > 180 else f"{day:%b %-d}"


def delta(value: object, baseline: object) -> str:
    """The change from baseline as text ("+2", "-3", "0"); empty when either is missing."""
    a, b = number(value), number(baseline)
    if a is None or b is None:
        return ""
    diff = a - b
    text = f"{diff:+.0f}" if diff == int(diff) else f"{diff:+.1f}"
    return "0" if text in ("+0", "-0") else text.replace("-", "\u2212")


def build_panel(
    spec: PanelSpec,
    baseline: Mapping[str, object],
    baseline_day: date | None,
    observations: Sequence[Observation],
    start: date,
    end: date,
    markers: Sequence[date] = (),
) -> Panel:
    """One panel's geometry: ticks, procedure markers, and a line per measure."""
    left, top, right, bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    values = [number(baseline.get(m.key)) for m in spec.measures] + [
        number(o.scores.get(m.key)) for o in observations for m in spec.measures
    ]
    present = [v for v in values if v is not None]
    maximum = spec.maximum or nice_ceiling(max(present, default=0))
    span = (end - start).days

    def x_of(day: date) -> float:
        return scale((day - start).days, 0, span, left, right)

    def y_of(value: float) -> float:
        return scale(value, 0, maximum, bottom, top)

    lines = []
    for index, measure in enumerate(spec.measures):
        colour, dash, shape = STYLES[index % len(STYLES)]
        base = number(baseline.get(measure.key))
        points = []
        if base is not None and baseline_day is not None:
            points.append(PlotPoint(x_of(baseline_day), y_of(base), baseline_day, base, "Baseline"))
        for obs in sorted(observations, key=lambda o: o.day):
            value = number(obs.scores.get(measure.key))
            if value is not None:
                points.append(PlotPoint(x_of(obs.day), y_of(value), obs.day, value, obs.label))
        lines.append(
            Line(
                measure.key,
                measure.label,
                colour,
                dash,
                shape,
                tuple(sorted(points, key=lambda p: p.day)),  # a line runs forward in time
                base,
                y_of(base) if base is not None else None,
            )
        )
    return Panel(
        id=spec.id,
        title=spec.title,
        maximum=maximum,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        y_ticks=tuple(Tick(y_of(v), f"{v:g}") for v in value_ticks(maximum)),
        x_ticks=tuple(Tick(x_of(d), date_label(d, start, end)) for d in date_ticks(start, end)),
        markers=tuple(Tick(x_of(d), f"{d:%b %-d, %Y}") for d in markers if start <= d <= end),
        lines=tuple(lines),
    )


def outcome_panels(
    baseline: Mapping[str, object],
    baseline_day: date | None,
    observations: Sequence[Observation],
    markers: Sequence[date] = (),
    *,
    today: date,
) -> list[Panel]:
    """Every panel on one shared time axis: baseline day, procedures and check-ins."""
    days = [o.day for o in observations] + list(markers)
    if baseline_day is not None:
        days.append(baseline_day)
    start, end = time_span(days or [today])
    return [
        build_panel(spec, baseline, baseline_day, observations, start, end, markers)
        for spec in PANELS
    ]
