"""What each appointment type sends and when, read from data; send-hour maths (pure).

The schedule is ``schedules.json`` unless ``NOTIFY_SCHEDULES_FILE`` names the clinic's own copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

PACKAGED = Path(__file__).parent / "schedules.json"


@dataclass(frozen=True)
class Step:
    kind: str
    at_booking: bool = False
    hours_before: float | None = None
    hours_after_no_show: float | None = None
    instructions_waiting: bool = False


@dataclass(frozen=True)
class Schedule:
    version: str
    by_type: dict[str, tuple[Step, ...]]

    def steps(self, type_code: str) -> tuple[Step, ...]:
        return self.by_type.get(type_code) or self.by_type.get("default", ())


@lru_cache(maxsize=4)
def load(path: str = "") -> Schedule:
    """The schedule in ``path`` (or the packaged default); errors name the bad entry."""
    data = json.loads(Path(path or PACKAGED).read_text())
    by_type = {}
    for code, steps in data["appointment_types"].items():
        parsed = []
        for raw in steps:
            step = Step(**raw)
            if (
                sum(
                    x is not None and x is not False
                    for x in (step.at_booking or None, step.hours_before, step.hours_after_no_show)
                )
                != 1
            ):
                raise ValueError(f"schedule {code}/{step.kind}: give exactly one timing")
            parsed.append(step)
        by_type[code] = tuple(parsed)
    return Schedule(version=str(data["version"]), by_type=by_type)


def in_send_hours(moment: datetime, tz: ZoneInfo, hours: tuple[int, int]) -> bool:
    """Whether ``moment`` falls within the clinic's send hours, read on the local wall clock."""
    start, end = hours
    local = moment.astimezone(tz)
    return start <= local.hour + local.minute / 60 < end  # the hour is below 24, so 0-24 is all day


def _local(day, hour: int, tz: ZoneInfo) -> datetime:
    """``hour`` o'clock on ``day`` in ``tz`` (24 means the next midnight)."""
    if hour == 24:
        return datetime.combine(day + timedelta(days=1), time(0), tz)
    return datetime.combine(day, time(hour), tz)


def within_send_hours(
    due: datetime, tz: ZoneInfo, hours: tuple[int, int], *, latest: datetime | None = None
) -> datetime:
    """``due`` moved into send hours: to the next opening, or (when that would reach ``latest``,
    the appointment) back to the last hour of the window before it. Wall-clock hours, so a
    daylight-saving change does not shift the window."""
    if in_send_hours(due, tz, hours):
        return due
    start, end = hours
    local = due.astimezone(tz)
    day = local.date()
    opening = _local(day, start, tz)
    if local >= opening:  # after today's window: tomorrow's opening
        opening = _local(day + timedelta(days=1), start, tz)
    if latest is None or opening < latest:
        return opening.astimezone(due.tzinfo)
    closing = _local(day, end, tz)
    if local < _local(day, start, tz):  # before today's window: yesterday's closing
        closing = _local(day - timedelta(days=1), end, tz)
    return (closing - timedelta(hours=1)).astimezone(due.tzinfo)
