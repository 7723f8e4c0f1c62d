"""The staff calendar: day and week grids, booking, moving, cancelling, today's list.

Routes on the staff blueprint. Times are stored in UTC and shown in the clinic's zone. The day
grid steps through absolute time, so a day when the clocks change gets the right rows (and its
labels say which offset they mean). Patient names appear in page bodies only: URLs carry ids,
and flash messages (kept in the session cookie) carry no names.

Cancelled and entered-in-error appointments are shown struck through, everywhere; they hold
no time, so their rows stay bookable.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from clinic import audit, http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.models import Patient
from clinic.scheduling import services
from clinic.scheduling.models import (
    Appointment,
    AppointmentType,
    Provider,
)
from clinic.staff import patient_picker
from clinic.staff.calendar_grid import (
    DESK_STATUSES,
    MOVABLE,
    STATUS_LABELS,
    STATUS_ORDER,
    S,
    _appointments,
    _audit_view,
    _by_id,
    _calendar_context,
    _day_bounds,
    _day_grid,
    _load,
    _local_input,
    _midnight,
    _providers_for,
    _requested_day,
    _week_cells,
    _when,
    parse_local,
)
from clinic.staff.roles import require
from clinic.staff.views import bp


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
    cells, works, book = _week_cells(days, providers, appointments, tz, http.now())
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
        book=book,
        one_week=timedelta(days=7),
        **_calendar_context(tz),
    )


@bp.get("/today")
@login_required
@require("appointments.view")
def today():
    tz = http.clinic_tz()
    now = http.now()
    day = now.astimezone(tz).date()
    start, end = _day_bounds(day, tz)
    rows = _appointments(start, end)
    _audit_view("today list")
    db.session.commit()
    return render_template(
        "staff/calendar_day.html",
        mode="today",
        day=day,
        appointments=rows,
        desk_statuses={a.id: _desk_buttons(a, now) for a in rows},
        **_calendar_context(tz),
    )


def _desk_buttons(appointment: Appointment, now) -> list[str]:
    """The today list's status buttons this appointment may take now, in their order."""
    allowed = services.next_statuses(appointment, now)
    return [s for s in DESK_STATUSES if s in allowed]


# -- booking ------------------------------------------------------------------------------------


def _render_new(values: dict, errors: dict, code: int = 200, conflict: str | None = None):
    patients = patient_picker.patients(
        patient_picker.search_terms(), http.parse_id(values["patient_id"])
    )
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
        patient_label=patient_picker.label,
        q=patient_picker.search_text(),
        types=types,
        providers=providers,
        **_calendar_context(http.clinic_tz()),
    ), code


NEW_FIELDS = ("patient_id", "appointment_type", "provider_id", "start", "return_to")


@bp.route("/calendar/new", methods=["GET", "POST"])
@login_required
@require("appointments.manage")
def calendar_new():
    tz = http.clinic_tz()
    if request.method == "GET" or patient_picker.searching():
        if request.method == "GET":
            values = {k: request.args.get(k, "") for k in NEW_FIELDS}
            values["start"] = _local_input(values["start"], tz)
        else:  # the name search: the other answers come back as they were
            values = {k: request.form.get(k, "").strip()[:100] for k in NEW_FIELDS}
        values["return_to"] = _return_to(values["return_to"])
        # The form lists patients by name and birth date: an access like any other.
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
    return _to_view(appointment, tz, values["return_to"])


# -- one appointment: details, move, cancel, status ---------------------------------------------


RETURN_TO = ("day", "week", "today")  # the views whose forms come back to them


def _return_to(raw: str | None) -> str:
    return raw if raw in RETURN_TO else "day"


def _to_view(appointment: Appointment, tz: ZoneInfo, view: str | None = None):
    """Back to the view the form was sent from, on the appointment's (new) day."""
    view = _return_to(view if view is not None else request.form.get("return_to"))
    if view == "today":
        return redirect(url_for(".today"))
    day = appointment.start_at.astimezone(tz).date().isoformat()
    return redirect(url_for(f".calendar_{view}", date=day))


def _render_detail(
    appointment: Appointment,
    *,
    values: dict | None = None,
    errors: dict | None = None,
    conflict: str | None = None,
    code: int = 200,
):
    tz = http.clinic_tz()
    allowed = services.next_statuses(appointment, http.now())
    next_statuses = [s for s in STATUS_ORDER if s in allowed and s != S.CANCELLED]
    providers = db.session.scalars(
        select(Provider).where(Provider.active.is_(True)).order_by(Provider.id)
    ).all()
    values = {
        "start": _local_input(appointment.start_at, tz),
        "provider_id": str(appointment.provider_id),
        "reason": "",
        "return_to": _return_to(request.form.get("return_to")),
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
    return _to_view(appointment, tz)


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
    return _to_view(appointment, http.clinic_tz())


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
    return _to_view(appointment, http.clinic_tz())
