"""The follow-up plan as data (``plan.json``, or ``FOLLOWUP_PLAN_FILE``) and its date maths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

PACKAGED = Path(__file__).parent / "plan.json"


@dataclass(frozen=True)
class PlannedPoint:
    code: str
    label: str
    offset_days: int
    window_before: int
    window_after: int
    enabled: bool = True
    next_business_day: bool = False
    wound_questions: bool = False
    odi_questions: bool = True  # asked only when a licensed ODI pack is loaded, too
    visit: bool = False


@dataclass(frozen=True)
class Plan:
    version: str
    resend_after_days: tuple[int, ...]
    staff_task_after_days: int
    points: tuple[PlannedPoint, ...]

    def enabled(self) -> tuple[PlannedPoint, ...]:
        return tuple(p for p in self.points if p.enabled)


@lru_cache(maxsize=4)
def load(path: str = "") -> Plan:
    data = json.loads(Path(path or PACKAGED).read_text())
    resends = tuple(int(d) for d in data["resend_after_days"])
    if len(resends) > 2:
        raise ValueError("at most two re-sends per timepoint")
    return Plan(
        version=str(data["version"]),
        resend_after_days=resends,
        staff_task_after_days=int(data["staff_task_after_days"]),
        points=tuple(PlannedPoint(**raw) for raw in data["timepoints"]),
    )


def due_on(point: PlannedPoint, performed_on: date) -> date:
    """The day a timepoint falls due; a call-type day-1 point skips the weekend."""
    day = performed_on + timedelta(days=point.offset_days)
    if point.next_business_day:
        while day.weekday() >= 5:
            day += timedelta(days=1)
    return day


def window(point: PlannedPoint, due: date) -> tuple[date, date]:
    return due - timedelta(days=point.window_before), due + timedelta(days=point.window_after)


def resend_days(plan: Plan, invited_on: date, window_end: date) -> list[date]:
    """The days of the re-sends after an invitation on ``invited_on`` that fall inside the
    window (counted from the invitation, which a late recording sends after the due day)."""
    days = (invited_on + timedelta(days=d) for d in plan.resend_after_days)
    return [day for day in days if day <= window_end]


def task_day(plan: Plan, invited_on: date, window_end: date) -> date:
    """When a non-responder becomes a staff task: after the last re-send, by the day after the
    window's end."""
    day = timedelta(days=1)
    resends = resend_days(plan, invited_on, window_end)
    by_end = min(invited_on + plan.staff_task_after_days * day, window_end + day)
    return max(by_end, max(resends, default=invited_on) + day)
