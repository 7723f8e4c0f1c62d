"""The staff calendar's building blocks: local-time helpers, the data each page needs, and
the day grid (providers side by side, one row per 15 minutes, DST-correct)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, request
from flask_login import current_user
from sqlalchemy import or_, select

from clinic import audit, http
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.scheduling import availability as av
from clinic.scheduling import services
from clinic.scheduling.models import (
    ACTIVE_STATUSES,
    TRANSITIONS,
    Appointment,
    AppointmentStatus,
    Location,
    Provider,
    TimeOff,
)
from clinic.staff.roles import can

S = AppointmentStatus
STEP = timedelta(minutes=15)  # one row of the day grid
STATUS_LABELS = {
    S.PROPOSED: "Proposed",
    S.PENDING: "Pending",
    S.BOOKED: "Booked",
    S.ARRIVED: "Arrived",
    S.CHECKED_IN: "Checked in",
    S.FULFILLED: "Fulfilled",
    S.CANCELLED: "Cancelled",
    S.NOSHOW: "No-show",
    S.ENTERED_IN_ERROR: "Entered in error",
    S.WAITLIST: "Waitlist",
}
STATUS_ORDER = list(STATUS_LABELS)
INACTIVE = (S.CANCELLED, S.ENTERED_IN_ERROR)  # struck through; hold no time
DESK_STATUSES = (S.ARRIVED, S.CHECKED_IN, S.NOSHOW, S.FULFILLED)  # the today list's buttons
MOVABLE = (S.BOOKED, S.PENDING)  # what services.reschedule accepts
_LOCAL_INPUT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
_FIRST_DAY, _LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
_TICK = timedelta(microseconds=1)


# -- time helpers -------------------------------------------------------------------------------


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local day begins (fold=0 also lands a skipped midnight on the change)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _midnight(day, tz), _midnight(day + timedelta(days=1), tz)


def _requested_day(tz: ZoneInfo) -> date:
    """?date=YYYY-MM-DD, or today in the clinic's zone."""
    raw = request.args.get("date", "")
    if not raw:
        return http.now().astimezone(tz).date()
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        day = None
    if day is None or not _FIRST_DAY <= day <= _LAST_DAY:  # a typed or mangled URL: say so
        flash(f"There is no date {raw[:20]!r} in the calendar: here is today.", "error")
        return http.now().astimezone(tz).date()
    return day


def parse_local(raw: str, tz: ZoneInfo, name: str = "start") -> datetime:
    """A clinic-local YYYY-MM-DDTHH:MM (or an ISO 8601 datetime with its offset), aware.

    A wall time repeated when the clocks go back means its first occurrence unless an offset
    is given; one skipped when they go forward is refused.
    """
    raw = (raw or "").strip()
    if not raw:
        raise ValidationFailed({name: ["Enter the date and time, e.g. 2026-11-24T09:30."]})
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or not (
        _LOCAL_INPUT.fullmatch(raw) or (moment.tzinfo is not None and "T" in raw)
    ):
        raise ValidationFailed({name: ["Use the format YYYY-MM-DDTHH:MM."]})
    if not _FIRST_DAY <= moment.date() <= _LAST_DAY:
        raise ValidationFailed({name: ["Enter a date between 1900 and 2999."]})
    if moment.tzinfo is not None:
        return moment.astimezone(tz)
    local = moment.replace(tzinfo=tz, fold=0)
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != moment:
        raise ValidationFailed(
            {name: ["That time does not exist on this day: the clocks go forward then."]}
        )
    return local


def _local_input(value: datetime | str | None, tz: ZoneInfo) -> str:
    """A value for a datetime-local input: clinic wall time, YYYY-MM-DDTHH:MM."""
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value) if value else None
            if value is not None and value.tzinfo is None:
                return value.strftime("%Y-%m-%dT%H:%M")
        return "" if value is None else value.astimezone(tz).strftime("%Y-%m-%dT%H:%M")
    except (ValueError, OverflowError):  # a hand-edited ?start= only loses its prefill
        return ""


def _when(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%a %b %-d, %Y %-I:%M %p %Z")


# -- loading ------------------------------------------------------------------------------------


def _appointments(start: datetime, end: datetime) -> list[Appointment]:
    return list(services.appointments_between(start, end))


def _providers_for(appointments) -> list[Provider]:
    """Active providers, and inactive ones still holding appointments in view, by id."""
    ids = {a.provider_id for a in appointments}
    return list(
        db.session.scalars(
            select(Provider)
            .where(or_(Provider.active.is_(True), Provider.id.in_(ids)))
            .order_by(Provider.id)
        )
    )


def _working(
    provider: Provider, start: datetime, end: datetime, locations: dict[int, Location]
) -> list[av.Interval]:
    """The provider's working intervals (UTC) within [start, end), at active locations."""
    found = []
    for location_id, (windows, overrides) in services.provider_schedules(
        provider, start, end
    ).items():
        location = locations[location_id]
        if not location.active:
            continue
        tz = ZoneInfo(location.timezone)
        day, last = start.astimezone(tz).date(), (end - _TICK).astimezone(tz).date()
        while day <= last:
            for interval in av.working_intervals(day, tz, windows, overrides):
                lo, hi = max(interval.start, start), min(interval.end, end)
                if lo < hi:
                    found.append(av.Interval(lo, hi))
            day += timedelta(days=1)
    return sorted(found, key=lambda iv: (iv.start, iv.end))


def _time_off(provider_ids, start: datetime, end: datetime) -> dict[int, list[av.Interval]]:
    spans: dict[int, list[av.Interval]] = {pid: [] for pid in provider_ids}
    for off in db.session.scalars(
        select(TimeOff).where(
            TimeOff.provider_id.in_(list(provider_ids)),
            TimeOff.end_at > start,
            TimeOff.start_at < end,
        )
    ):
        spans[off.provider_id].append(av.Interval(off.start_at, off.end_at))
    return spans


def _locations() -> dict[int, Location]:
    return {location.id: location for location in db.session.scalars(select(Location))}


def _load(appointment_id: int) -> Appointment:
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        abort(404)
    return appointment


def _by_id(model, raw: str):
    ident = http.parse_id(raw)
    return db.session.get(model, ident) if ident is not None else None


def _audit_view(reason: str, **kwargs) -> None:
    audit.record(
        "view",
        actor=current_user,
        resource_type="appointment",
        reason=reason,
        client=http.client_meta(),
        now=http.now(),
        **kwargs,
    )


# -- the day grid -------------------------------------------------------------------------------


@dataclass
class Cell:
    state: str  # free, busy, buffer, timeoff, off
    appointments: list[Appointment] = field(default_factory=list)
    book_start: str | None = None  # ISO with offset, for the Book link


@dataclass
class Row:
    start: datetime  # clinic-local
    label: str
    hour: bool  # the first row of an hour
    past: bool  # over before now: offers no booking
    cells: list[Cell]


def _overlaps(start: datetime, end: datetime, spans) -> bool:
    return any(s_start < end and start < s_end for s_start, s_end in spans)


def _day_grid(day: date, tz: ZoneInfo, now: datetime):
    start, end = _day_bounds(day, tz)
    appointments = _appointments(start, end)
    providers = _providers_for(appointments)
    locations = _locations()
    working = {p.id: _working(p, start, end, locations) for p in providers}
    time_off = _time_off([p.id for p in providers], start, end)
    spans = [iv for ivs in working.values() for iv in ivs]
    spans += [av.Interval(a.start_at, max(a.end_at, a.start_at + STEP)) for a in appointments]
    if not spans:
        return providers, [], False
    first = max(start, min(iv.start for iv in spans))
    last = min(end, max(iv.end for iv in spans))
    origin = first.replace(minute=first.minute - first.minute % 15, second=0, microsecond=0)
    clocks_change = start.astimezone(tz).utcoffset() != end.astimezone(tz).utcoffset()
    label_format = "%-I:%M %p %Z" if clocks_change else "%-I:%M %p"

    active = {p.id: [] for p in providers}
    for a in appointments:
        if a.status in ACTIVE_STATUSES:
            active[a.provider_id].append(a)
    rows: list[Row] = []
    moment = origin
    while moment < last:
        row_end = moment + STEP
        past = row_end <= now
        cells = []
        for p in providers:
            mine = active[p.id]
            if _overlaps(moment, row_end, [(a.start_at, a.end_at) for a in mine]):
                state = "busy"
            elif _overlaps(moment, row_end, [(a.occupied_start, a.occupied_end) for a in mine]):
                state = "buffer"
            elif _overlaps(moment, row_end, [(iv.start, iv.end) for iv in time_off[p.id]]):
                state = "timeoff"
            elif any(iv.start <= moment and row_end <= iv.end for iv in working[p.id]):
                state = "free"
            else:
                state = "off"
            # The past offers no Book link (a late entry still goes through the form).
            book = moment.astimezone(tz).isoformat() if state == "free" and not past else None
            cells.append(Cell(state, book_start=book))
        local = moment.astimezone(tz)
        rows.append(Row(local, local.strftime(label_format), local.minute == 0, past, cells))
        moment = row_end

    column = {p.id: i for i, p in enumerate(providers)}
    for a in appointments:
        index = min(max(0, (a.start_at - origin) // STEP), len(rows) - 1)
        rows[index].cells[column[a.provider_id]].appointments.append(a)
    return providers, rows, clocks_change


# -- the week grid ------------------------------------------------------------------------------


def _ceil_quarter(moment: datetime) -> datetime:
    floor = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    return floor if floor == moment else floor + STEP


def _first_free(
    working: list[av.Interval], busy: list[tuple[datetime, datetime]], not_before: datetime
) -> datetime | None:
    """The first quarter hour in working time, from not_before on, clear of every busy span.

    The week grid's Book link starts the form there; the service still checks the whole visit.
    """
    earliest = _ceil_quarter(not_before)
    for interval in working:
        moment = max(interval.start, earliest)
        while moment + STEP <= interval.end:
            clash = [s_end for s_start, s_end in busy if s_start < moment + STEP and moment < s_end]
            if not clash:
                return moment
            moment = _ceil_quarter(max(clash))
    return None


def _week_cells(days: list[date], providers, appointments, tz: ZoneInfo, now: datetime):
    """Per (day, provider): the appointments, whether they work, and where a booking could go."""
    start, end = _midnight(days[0], tz), _midnight(days[-1] + timedelta(days=1), tz)
    locations = _locations()
    time_off = _time_off([p.id for p in providers], start, end)
    cells: dict[tuple[date, int], list[Appointment]] = {
        (d, p.id): [] for d in days for p in providers
    }
    busy: dict[int, list[tuple[datetime, datetime]]] = {
        p.id: [(iv.start, iv.end) for iv in time_off[p.id]] for p in providers
    }
    for a in appointments:
        cells[(a.start_at.astimezone(tz).date(), a.provider_id)].append(a)
        if a.status in ACTIVE_STATUSES:
            busy[a.provider_id].append((a.occupied_start, a.occupied_end))
    works: set[tuple[date, int]] = set()
    book: dict[tuple[date, int], datetime] = {}  # clinic-local
    for p in providers:
        by_day: dict[date, list[av.Interval]] = {}
        for interval in _working(p, start, end, locations):
            by_day.setdefault(interval.start.astimezone(tz).date(), []).append(interval)
        for day, intervals in by_day.items():
            works.add((day, p.id))
            first = _first_free(intervals, busy[p.id], now) if p.active else None
            if first is not None:
                book[(day, p.id)] = first.astimezone(tz)
    return cells, works, book


def _calendar_context(tz: ZoneInfo) -> dict:
    return {
        "tz": tz,
        "labels": STATUS_LABELS,
        "inactive": INACTIVE,
        "movable": MOVABLE,
        "transitions": TRANSITIONS,
        "can_manage": can(current_user, "appointments.manage"),
        "today": http.now().astimezone(tz).date(),
    }
