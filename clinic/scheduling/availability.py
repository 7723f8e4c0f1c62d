"""Free-slot computation: pure functions of the schedule, the busy spans, the rules and `now`.

All arithmetic happens in UTC. Two aware datetimes that share a tzinfo are subtracted and
compared by wall clock (ignoring `fold`), which is wrong across a DST change; converting to UTC
first sidesteps that. Datetimes go back into the clinic's zone only in the returned slots.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_ONE_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)
# Stands in for "no upper bound" when now + horizon does not fit in a datetime.
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC; refuses naive datetimes, whose instant is unknown."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: a timezone is required")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Interval:
    """A half-open [start, end) span of absolute time; both ends tz-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _utc(self.start)
        _utc(self.end)

    def overlaps(self, other: Interval) -> bool:
        """True if the two spans share at least one instant (touching ends do not)."""
        # Through UTC: same-tzinfo comparison would ignore fold inside a repeated hour.
        return max(_utc(self.start), _utc(other.start)) < min(_utc(self.end), _utc(other.end))


@dataclass(frozen=True)
class Window:
    """Local wall-clock working hours on one weekday (0 = Monday)."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True)
class SlotRules:
    """How appointments of one type are laid out on the working hours."""

    duration: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    step: timedelta
    min_notice: timedelta
    horizon: timedelta
    daily_cap: int | None


@dataclass(frozen=True)
class Slot:
    """A bookable appointment; start and end are expressed in the clinic's zone."""

    start: datetime
    end: datetime

    def occupied(self, rules: SlotRules) -> Interval:
        """The span the slot keeps free: [start - buffer_before, end + buffer_after), in UTC."""
        # In UTC: wall-clock arithmetic in the zone would land in (or skip) a DST gap.
        return Interval(_utc(self.start) - rules.buffer_before, _utc(self.end) + rules.buffer_after)


def _local_to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time: first occurrence if repeated, gap's end if skipped."""
    # fold=0 picks the first occurrence of a repeated wall time (and ignores a fold on `wall`).
    local = datetime.combine(day, wall.replace(tzinfo=None), tzinfo=tz).replace(fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # The wall time was skipped. Its two readings (offset before / after the change) bracket the
    # transition; the first valid instant after the gap is the transition itself, found by
    # bisection since zoneinfo exposes no transition table.
    other = local.replace(fold=1).astimezone(UTC)
    lo, hi = min(instant, other), max(instant, other)
    after = hi.astimezone(tz).utcoffset()
    while hi - lo > _TICK:
        mid = lo + (hi - lo) // 2
        if mid.astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi


def working_intervals(
    day: date,
    tz: ZoneInfo,
    weekly: Sequence[Window],
    overrides: Mapping[date, Sequence[tuple[time, time]]],
) -> list[Interval]:
    """Absolute working intervals (in UTC) of one local day, sorted; override else weekly."""
    if day in overrides:
        # An override replaces the weekly hours entirely; an empty one closes the day.
        spans = list(overrides[day])
    else:
        spans = [(w.start, w.end) for w in weekly if w.weekday == day.weekday()]
    intervals = []
    for start, end in spans:
        if end <= start:
            continue
        absolute_start = _local_to_utc(day, start, tz)
        absolute_end = _local_to_utc(day, end, tz)
        # A window lying wholly inside a DST gap maps to an empty span.
        if absolute_start < absolute_end:
            intervals.append(Interval(absolute_start, absolute_end))
    intervals.sort(key=lambda iv: (iv.start, iv.end))
    return intervals


class _BusyIndex:
    """Busy spans merged into a sorted disjoint union, so one bisection answers an overlap."""

    def __init__(self, busy: Sequence[Interval]) -> None:
        # Empty spans hold no instant, so they can block nothing.
        spans = sorted((_utc(b.start), _utc(b.end)) for b in busy if _utc(b.start) < _utc(b.end))
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
        for start, end in spans:
            if self.ends and start <= self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
            else:
                self.starts.append(start)
                self.ends.append(end)

    def is_free(self, start: datetime, end: datetime) -> bool:
        """True if the non-empty UTC span [start, end) meets no busy span."""
        # The first merged span ending after `start` is the only one that can reach into it.
        i = bisect_right(self.ends, start)
        return i == len(self.starts) or self.starts[i] >= end


def _check_rules(rules: SlotRules) -> None:
    # A non-positive step would never advance; a non-positive duration is not an appointment.
    if rules.step <= timedelta(0):
        raise ValueError("step must be positive")
    if rules.duration <= timedelta(0):
        raise ValueError("duration must be positive")
    if rules.buffer_before < timedelta(0) or rules.buffer_after < timedelta(0):
        raise ValueError("buffers must not be negative")


def free_slots(
    *,
    tz: ZoneInfo,
    weekly: Sequence[Window],
    overrides: Mapping[date, Sequence[tuple[time, time]]],
    busy: Sequence[Interval],
    booked_per_day: Mapping[date, int],
    rules: SlotRules,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Slot]:
    """Every bookable slot whose start lies in [start, end), sorted by start."""
    _check_rules(rules)
    now_utc = _utc(now)
    earliest = max(_utc(start), now_utc + rules.min_notice)  # inclusive
    before = _utc(end)  # exclusive
    try:
        latest = now_utc + rules.horizon  # inclusive
    except OverflowError:
        latest = _FAR_FUTURE
    if earliest >= before or earliest > latest:
        return []
    index = _BusyIndex(busy)
    # A working interval lies within its local day, so only the local days of the bounds and
    # those between them can hold a slot; one day of margin costs little and is safe.
    day = earliest.astimezone(tz).date() - _ONE_DAY
    last_day = min(before, latest).astimezone(tz).date() + _ONE_DAY
    starts: set[datetime] = set()
    while day <= last_day:
        cap_reached = rules.daily_cap is not None and booked_per_day.get(day, 0) >= rules.daily_cap
        if not cap_reached:
            for interval in working_intervals(day, tz, weekly, overrides):
                starts.update(_interval_slots(interval, rules, index, earliest, before, latest))
        day += _ONE_DAY
    # A set: overlapping windows put the same grid point on offer twice.
    return [
        Slot(moment.astimezone(tz), (moment + rules.duration).astimezone(tz))
        for moment in sorted(starts)
    ]


def _interval_slots(
    interval: Interval,
    rules: SlotRules,
    index: _BusyIndex,
    earliest: datetime,
    before: datetime,
    latest: datetime,
) -> list[datetime]:
    """UTC starts on one working interval's grid that fit in it, meet the bounds and are free."""
    origin = interval.start  # already UTC: the grid steps in absolute time
    # Skip straight to the first grid point at or after `earliest` (ceiling division).
    k = 0 if earliest <= origin else -((origin - earliest) // rules.step)
    found = []
    while True:
        slot_start = origin + k * rules.step
        slot_end = slot_start + rules.duration
        if slot_end > interval.end or slot_start >= before or slot_start > latest:
            return found
        if index.is_free(slot_start - rules.buffer_before, slot_end + rules.buffer_after):
            found.append(slot_start)
        k += 1
