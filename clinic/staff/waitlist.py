"""The waitlist: patients waiting for a kind of visit (with a provider, or any), and the slots
that cancellations free up, each offered to the matching patients and booked in one step.

Patient names appear on the page only: URLs carry ids, flash messages (kept in the session
cookie) and logs carry no names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import exists, select
from sqlalchemy.orm import joinedload
from wtforms import SelectField, TextAreaField, ValidationError
from wtforms.validators import Length

from clinic import audit, http
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.models import Patient
from clinic.scheduling import services
from clinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Provider,
    TimeOff,
    WaitlistEntry,
)
from clinic.staff.forms import ActionForm
from clinic.staff.roles import can, require
from clinic.staff.views import bp

FREED_WITHIN = timedelta(days=14)  # cancellations this recent are offered to the waitlist
MAX_FREED_SLOTS = 200


def _int_or_none(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class WaitlistForm(FlaskForm):
    patient_id = SelectField("Patient", coerce=_int_or_none, validate_choice=False)
    appointment_type_id = SelectField("Kind of visit", coerce=_int_or_none, validate_choice=False)
    provider_id = SelectField("Provider", coerce=_int_or_none, validate_choice=False)
    note = TextAreaField(
        "Note (optional)",
        filters=[_strip],
        validators=[Length(max=300, message="Use at most 300 characters.")],
    )

    def validate_patient_id(self, field):
        if field.data is None or db.session.get(Patient, field.data) is None:
            raise ValidationError("Choose a patient.")

    def validate_appointment_type_id(self, field):
        found = db.session.get(AppointmentType, field.data) if field.data is not None else None
        if found is None or not found.active:
            raise ValidationError("Choose a kind of visit.")

    def validate_provider_id(self, field):
        if field.raw_data and field.raw_data[0] not in ("", None) and field.data is None:
            raise ValidationError("Choose a provider, or any provider.")
        if field.data is not None:
            found = db.session.get(Provider, field.data)
            if found is None or not found.active:
                raise ValidationError("Choose a provider, or any provider.")


def _waitlist_form() -> WaitlistForm:
    form = WaitlistForm()
    patients = db.session.execute(
        select(Patient.id, Patient.last_name, Patient.first_name, Patient.date_of_birth).order_by(
            Patient.last_name, Patient.first_name, Patient.id
        )
    ).all()
    form.patient_id.choices = [("", "Choose a patient")] + [
        (pid, f"{last}, {first} (born {dob:%m/%d/%Y})") for pid, last, first, dob in patients
    ]
    types = db.session.scalars(
        select(AppointmentType).where(AppointmentType.active.is_(True)).order_by(AppointmentType.id)
    )
    form.appointment_type_id.choices = [("", "Choose a kind of visit")] + [
        (t.id, t.name) for t in types
    ]
    providers = db.session.scalars(
        select(Provider).where(Provider.active.is_(True)).order_by(Provider.name)
    )
    form.provider_id.choices = [("", "Any provider")] + [(p.id, p.name) for p in providers]
    return form


@dataclass(frozen=True)
class FreedSlot:
    appointment: Appointment  # the cancelled one: its provider, type, place and time
    matches: list[WaitlistEntry]


def _still_free(appointment: Appointment) -> bool:
    """No active appointment and no time off of the provider over the occupied span."""
    overlapping = exists().where(
        Appointment.provider_id == appointment.provider_id,
        Appointment.status.in_(ACTIVE_STATUSES),
        Appointment.occupied_start < appointment.occupied_end,
        Appointment.occupied_end > appointment.occupied_start,
    )
    time_off = exists().where(
        TimeOff.provider_id == appointment.provider_id,
        TimeOff.start_at < appointment.occupied_end,
        TimeOff.end_at > appointment.occupied_start,
    )
    return not db.session.scalar(select(overlapping | time_off))


def freed_slots(now: datetime) -> list[FreedSlot]:
    """Future times of recent cancellations that nobody has taken since, with who waits."""
    cancelled = db.session.scalars(
        select(Appointment)
        .options(
            joinedload(Appointment.provider),
            joinedload(Appointment.appointment_type),
            joinedload(Appointment.location),
        )
        .where(
            Appointment.status == AppointmentStatus.CANCELLED,
            Appointment.cancelled_at >= now - FREED_WITHIN,
            Appointment.start_at > now,
        )
        .order_by(Appointment.start_at, Appointment.provider_id, Appointment.id)
        .limit(MAX_FREED_SLOTS)
    ).all()
    seen: set[tuple] = set()
    found = []
    for appointment in cancelled:
        key = (appointment.provider_id, appointment.appointment_type_id, appointment.start_at)
        if key in seen:  # cancelled, rebooked and cancelled again: one slot
            continue
        seen.add(key)
        if not appointment.provider.active or not _still_free(appointment):
            continue
        found.append(FreedSlot(appointment, list(services.waitlist_matches(appointment))))
    return found


def waiting_for(now: datetime, created_at: datetime) -> str:
    days = (now - created_at).days
    if days < 1:
        return "Today"
    if days < 14:
        return f"{days} day{'s' if days > 1 else ''}"
    return f"{days // 7} weeks"


def _render(form: WaitlistForm | None, code: int = 200):
    now = http.now()
    entries = db.session.scalars(
        select(WaitlistEntry)
        .options(
            joinedload(WaitlistEntry.patient),
            joinedload(WaitlistEntry.appointment_type),
            joinedload(WaitlistEntry.provider),
        )
        .where(WaitlistEntry.status == "waiting")
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    ).all()
    manage = can(current_user, "appointments.manage")
    if manage and form is None:
        form = _waitlist_form()
    audit.record(
        "search",
        actor=current_user,
        resource_type="waitlist_entry",
        reason="waitlist",
        client=http.client_meta(),
        now=now,
    )
    db.session.commit()
    return render_template(
        "staff/waitlist.html",
        entries=entries,
        freed=freed_slots(now),
        form=form if manage else None,
        manage=manage,
        now=now,
        waiting_for=waiting_for,
    ), code


@bp.get("/waitlist")
@login_required
@require("appointments.view")
def waitlist():
    return _render(None)


@bp.post("/waitlist")
@login_required
@require("appointments.manage")
def add_to_waitlist():
    form = _waitlist_form()
    if not form.validate_on_submit():
        return _render(form, 422)
    duplicate = db.session.scalar(
        select(WaitlistEntry.id).where(
            WaitlistEntry.status == "waiting",
            WaitlistEntry.patient_id == form.patient_id.data,
            WaitlistEntry.appointment_type_id == form.appointment_type_id.data,
            WaitlistEntry.provider_id.is_(None)
            if form.provider_id.data is None
            else WaitlistEntry.provider_id == form.provider_id.data,
        )
    )
    if duplicate is not None:
        form.patient_id.errors = ["This patient is already waiting for this visit."]
        return _render(form, 422)
    now = http.now()
    entry = WaitlistEntry(
        patient_id=form.patient_id.data,
        appointment_type_id=form.appointment_type_id.data,
        provider_id=form.provider_id.data,
        note=form.note.data or "",
        status="waiting",
        created_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    audit.record_about(
        "create",
        entry,
        actor=current_user,
        changed_fields=["appointment_type_id", "provider_id", "note"],
        client=http.client_meta(),
        now=now,
    )
    db.session.commit()
    flash("Added to the waitlist.", "success")
    return redirect(url_for(".waitlist"))


def _waiting_entry(entry_id: int) -> WaitlistEntry | None:
    """The entry, locked against a second booking from another tab; None if no longer waiting."""
    entry = db.session.get(WaitlistEntry, entry_id, with_for_update=True)
    if entry is None:
        abort(404)
    if entry.status != "waiting":
        db.session.rollback()
        flash("That patient is no longer on the waitlist.", "error")
        return None
    return entry


@bp.post("/waitlist/<int:entry_id>/remove")
@login_required
@require("appointments.manage")
def remove_from_waitlist(entry_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    entry = _waiting_entry(entry_id)
    if entry is None:
        return redirect(url_for(".waitlist"))
    entry.status = "removed"
    audit.record_about(
        "update",
        entry,
        actor=current_user,
        changed_fields=["status"],
        reason="waiting -> removed",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    flash("Removed from the waitlist.", "success")
    return redirect(url_for(".waitlist"))


def _posted_start() -> datetime | None:
    try:
        start = datetime.fromisoformat(request.form.get("start", ""))
    except ValueError:
        return None
    return start if start.tzinfo is not None and http.sane_moment(start) else None


@bp.post("/waitlist/<int:entry_id>/book")
@login_required
@require("appointments.manage")
def book_from_waitlist(entry_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    start = _posted_start()
    provider = db.session.get(Provider, request.form.get("provider_id", type=int) or 0)
    if start is None or provider is None:
        abort(400)
    entry = _waiting_entry(entry_id)
    if entry is None:
        return redirect(url_for(".waitlist"))
    if entry.provider_id not in (None, provider.id):
        abort(400)
    now = http.now()
    if start <= now or not provider.active:
        db.session.rollback()
        flash("That slot is no longer bookable.", "error")
        return redirect(url_for(".waitlist"))
    try:
        appointment = services.book_appointment(
            entry.patient,
            entry.appointment_type,
            provider,
            start,
            now=now,
            actor=current_user,
            source="staff",
            client=http.client_meta(),
        )
    except services.SlotUnavailable:
        db.session.rollback()
        flash(
            "That time is no longer available (someone took it meanwhile, or the provider's "
            "hours changed); nothing was booked.",
            "error",
        )
        return redirect(url_for(".waitlist"))
    except ValidationFailed as exc:
        db.session.rollback()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "error")
        return redirect(url_for(".waitlist"))
    entry.status = "booked"
    entry.appointment_id = appointment.id
    audit.record_about(
        "update",
        entry,
        actor=current_user,
        changed_fields=["status", "appointment_id"],
        reason=f"waiting -> booked: appointment {appointment.id}",
        client=http.client_meta(),
        now=now,
    )
    db.session.commit()
    tz = http.clinic_tz()
    flash(
        f"Booked: {entry.appointment_type.name}, "
        f"{appointment.start_at.astimezone(tz):%a %b %-d, %-I:%M %p} with {provider.name}. "
        "Let the patient know.",
        "success",
    )
    return redirect(url_for(".waitlist"))
