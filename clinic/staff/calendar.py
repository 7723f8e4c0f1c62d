"""The staff calendar: day and week grids, booking, moving, cancelling, today's list.

Routes on the staff blueprint. Times are stored in UTC and shown in the clinic's zone. The day
grid steps through absolute time, so a day when the clocks change gets the right rows (and its
labels say which offset they mean). Patient names appear in page bodies only: URLs carry ids,
and flash messages (kept in the session cookie) carry no names.

Cancelled and entered-in-error appointments are shown struck through, everywhere; they hold
no time, so their rows stay bookable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from clinic import audit, http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.models import Patient
from clinic.scheduling import availability as av
from clinic.scheduling import services
from clinic.scheduling.models import (
    ACTIVE_STATUSES,
    TRANSITIONS,
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
    TimeOff,
)
from clinic.staff.roles import can, require
from clinic.staff.views import bp

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
        abort(400)
    if not _FIRST_DAY <= day <= _LAST_DAY:
        abort(400)
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
    """Appointments starting in [start, end) by time then provider, as
    services.appointments_between, with their patients and types loaded up front (not one
    query per row)."""
    return list(
        db.session.scalars(
            select(Appointment)
            .options(selectinload(Appointment.patient), selectinload(Appointment.appointment_type))
            .where(Appointment.start_at >= start, Appointment.start_at < end)
            .order_by(Appointment.start_at, Appointment.provider_id)
        )
    )


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
    return db.session.get(model, int(raw)) if raw.isdigit() and len(raw) < 10 else None


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


def _calendar_context(tz: ZoneInfo) -> dict:
    return {
        "tz": tz,
        "labels": STATUS_LABELS,
        "inactive": INACTIVE,
        "can_manage": can(current_user, "appointments.manage"),
        "today": http.now().astimezone(tz).date(),
    }


@bp.get("/calendar/day")
@login_required
@require("appointments.view")
def calendar_day():
    tz = http.clinic_tz()
    day = _requested_day(tz)
    providers, rows, clocks_change = _day_grid(day, tz, http.now())
    _audit_view(f"calendar day {day.isoformat()}")
    db.session.commit()
    return render_template(
        "staff/calendar_day.html",
        mode="grid",
        day=day,
        providers=providers,
        rows=rows,
        clocks_change=clocks_change,
        one_day=timedelta(days=1),
        **_calendar_context(tz),
    )


@bp.get("/calendar/week")
@login_required
@require("appointments.view")
def calendar_week():
    tz = http.clinic_tz()
    requested = _requested_day(tz)
    monday = requested - timedelta(days=requested.weekday())
    days = [monday + timedelta(days=i) for i in range(7)]
    start, end = _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz)
    appointments = _appointments(start, end)
    providers = _providers_for(appointments)
    locations = _locations()
    cells: dict[tuple[date, int], list[Appointment]] = {
        (d, p.id): [] for d in days for p in providers
    }
    for a in appointments:
        cells[(a.start_at.astimezone(tz).date(), a.provider_id)].append(a)
    works = set()
    for p in providers:
        for interval in _working(p, start, end, locations):
            works.add((interval.start.astimezone(tz).date(), p.id))
    _audit_view(f"calendar week {monday.isoformat()}")
    db.session.commit()
    return render_template(
        "staff/calendar_week.html",
        day=requested,
        monday=monday,
        days=days,
        providers=providers,
        cells=cells,
        works=works,
        one_week=timedelta(days=7),
        **_calendar_context(tz),
    )


@bp.get("/today")
@login_required
@require("appointments.view")
def today():
    tz = http.clinic_tz()
    day = http.now().astimezone(tz).date()
    start, end = _day_bounds(day, tz)
    rows = _appointments(start, end)
    _audit_view("today list")
    db.session.commit()
    return render_template(
        "staff/calendar_day.html",
        mode="today",
        day=day,
        appointments=rows,
        transitions=TRANSITIONS,
        desk_statuses=DESK_STATUSES,
        **_calendar_context(tz),
    )


# -- booking ------------------------------------------------------------------------------------


def _render_new(values: dict, errors: dict, code: int = 200, conflict: str | None = None):
    patients = db.session.scalars(
        select(Patient).order_by(Patient.last_name, Patient.first_name, Patient.id)
    ).all()
    types = db.session.scalars(
        select(AppointmentType).where(AppointmentType.active.is_(True)).order_by(AppointmentType.id)
    ).all()
    providers = db.session.scalars(
        select(Provider).where(Provider.active.is_(True)).order_by(Provider.id)
    ).all()
    return render_template(
        "staff/appointment.html",
        mode="new",
        values=values,
        errors=errors,
        conflict=conflict,
        patients=patients,
        types=types,
        providers=providers,
        **_calendar_context(http.clinic_tz()),
    ), code


NEW_FIELDS = ("patient_id", "appointment_type", "provider_id", "start")


@bp.route("/calendar/new", methods=["GET", "POST"])
@login_required
@require("appointments.manage")
def calendar_new():
    tz = http.clinic_tz()
    if request.method == "GET":
        values = {k: request.args.get(k, "") for k in NEW_FIELDS}
        values["start"] = _local_input(values["start"], tz)
        # The form lists every patient by name and birth date: an access like any other.
        audit.record(
            "search",
            actor=current_user,
            resource_type="patient",
            reason="booking form patient list",
            client=http.client_meta(),
            now=http.now(),
        )
        db.session.commit()
        return _render_new(values, {})
    values = {k: request.form.get(k, "").strip() for k in NEW_FIELDS}
    errors: dict[str, list[str]] = {}
    patient = _by_id(Patient, values["patient_id"])
    if patient is None:
        errors["patient_id"] = ["Choose the patient."]
    appointment_type = db.session.scalars(
        select(AppointmentType).where(
            AppointmentType.code == values["appointment_type"], AppointmentType.active.is_(True)
        )
    ).first()
    if appointment_type is None:
        errors["appointment_type"] = ["Choose the type of visit."]
    provider = _by_id(Provider, values["provider_id"])
    if provider is None or not provider.active:
        errors["provider_id"] = ["Choose the provider."]
    try:
        start = parse_local(values["start"], tz)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        return _render_new(values, errors, 422)
    try:
        appointment = services.book_appointment(
            patient,
            appointment_type,
            provider,
            start,
            now=http.now(),
            actor=current_user,
            source="staff",
            client=http.client_meta(),
        )
    except services.SlotUnavailable as exc:
        db.session.rollback()
        return _render_new(values, {}, 409, conflict=str(exc))
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_new(values, exc.errors, 422)
    db.session.commit()
    flash(
        f"Appointment #{appointment.id} booked for {_when(appointment.start_at, tz)} "
        f"with {provider.name}.",
        "success",
    )
    return _to_day(appointment, tz)


# -- one appointment: details, move, cancel, status ---------------------------------------------


def _to_day(appointment: Appointment, tz: ZoneInfo):
    day = appointment.start_at.astimezone(tz).date().isoformat()
    return redirect(url_for(".calendar_day", date=day))


def _render_detail(
    appointment: Appointment,
    *,
    values: dict | None = None,
    errors: dict | None = None,
    conflict: str | None = None,
    code: int = 200,
):
    tz = http.clinic_tz()
    allowed = TRANSITIONS.get(appointment.status, set())
    next_statuses = [s for s in STATUS_ORDER if s in allowed and s != S.CANCELLED]
    providers = db.session.scalars(
        select(Provider).where(Provider.active.is_(True)).order_by(Provider.id)
    ).all()
    values = {
        "start": _local_input(appointment.start_at, tz),
        "provider_id": str(appointment.provider_id),
        "reason": "",
        **(values or {}),
    }
    return render_template(
        "staff/appointment.html",
        mode="detail",
        appointment=appointment,
        values=values,
        errors=errors or {},
        conflict=conflict,
        providers=providers,
        next_statuses=next_statuses,
        can_move=appointment.status in MOVABLE,
        can_cancel=S.CANCELLED in allowed,
        **_calendar_context(tz),
    ), code


@bp.get("/appointments/<int:appointment_id>")
@login_required
@require("appointments.view")
def appointment_detail(appointment_id: int):
    appointment = _load(appointment_id)
    _audit_view("appointment", patient_id=appointment.patient_id, resource_id=appointment.id)
    db.session.commit()
    return _render_detail(appointment)


def _apply(appointment: Appointment, values: dict, action):
    """Run a service; its refusal re-renders the page (422 for input, 409 for the state)."""
    try:
        action()
    except services.SlotUnavailable as exc:
        db.session.rollback()
        return _render_detail(appointment, values=values, conflict=str(exc), code=409)
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_detail(appointment, values=values, errors=exc.errors, code=422)
    except DomainError as exc:
        db.session.rollback()
        return _render_detail(appointment, values=values, conflict=str(exc), code=409)
    db.session.commit()
    return None


@bp.post("/appointments/<int:appointment_id>/move")
@login_required
@require("appointments.manage")
def appointment_move(appointment_id: int):
    appointment = _load(appointment_id)
    tz = http.clinic_tz()
    values = {k: request.form.get(k, "").strip() for k in ("start", "provider_id")}
    errors: dict[str, list[str]] = {}
    try:
        start = parse_local(values["start"], tz)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    provider = None
    if values["provider_id"]:
        provider = _by_id(Provider, values["provider_id"])
        if provider is None or not provider.active:
            errors["provider_id"] = ["Choose a provider from the list."]
    if errors:
        return _render_detail(appointment, values=values, errors=errors, code=422)
    refused = _apply(
        appointment,
        values,
        lambda: services.reschedule(
            appointment,
            start,
            now=http.now(),
            actor=current_user,
            provider=provider,
            client=http.client_meta(),
        ),
    )
    if refused:
        return refused
    flash(
        f"Appointment #{appointment.id} moved to {_when(appointment.start_at, tz)} "
        f"with {appointment.provider.name}.",
        "success",
    )
    return _to_day(appointment, tz)


@bp.post("/appointments/<int:appointment_id>/cancel")
@login_required
@require("appointments.manage")
def appointment_cancel(appointment_id: int):
    appointment = _load(appointment_id)
    values = {"reason": request.form.get("reason", "")}
    refused = _apply(
        appointment,
        values,
        lambda: services.cancel(
            appointment,
            values["reason"],
            now=http.now(),
            actor=current_user,
            client=http.client_meta(),
        ),
    )
    if refused:
        return refused
    flash(f"Appointment #{appointment.id} cancelled.", "success")
    return _to_day(appointment, http.clinic_tz())


@bp.post("/appointments/<int:appointment_id>/status")
@login_required
@require("appointments.manage")
def appointment_status(appointment_id: int):
    appointment = _load(appointment_id)
    status = request.form.get("status", "")
    refused = _apply(
        appointment,
        {},
        lambda: services.change_status(
            appointment,
            status,
            now=http.now(),
            actor=current_user,
            reason=request.form.get("reason", ""),
            client=http.client_meta(),
        ),
    )
    if refused:
        return refused
    flash(f"Appointment #{appointment.id}: {STATUS_LABELS[status].lower()}.", "success")
    if request.form.get("return_to") == "today":
        return redirect(url_for(".today"))
    return _to_day(appointment, http.clinic_tz())
