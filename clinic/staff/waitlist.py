"""The waitlist: patients waiting for a kind of visit (with a provider, or any), each with the
earliest time open for it now, and the slots that free up (cancelled, moved away, entered in
error), each offered to the matching patients; either booked in one step.

Patient names appear on the page only: URLs carry ids, flash messages (kept in the session
cookie) and logs carry no names.
"""

from __future__ import annotations

from datetime import datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, TextAreaField, ValidationError
from wtforms.validators import Length

from clinic import audit, http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.models import Patient
from clinic.scheduling import services
from clinic.scheduling import waitlist as waitlist_services
from clinic.scheduling.models import (
    AppointmentType,
    FreedBy,
    Provider,
    WaitlistEntry,
)
from clinic.staff import patient_picker
from clinic.staff.forms import ActionForm
from clinic.staff.roles import can, require
from clinic.staff.views import bp

# Why a freed slot is free, as the page says it.
FREED_BY_LABELS = {
    FreedBy.CANCELLED: "Cancelled",
    FreedBy.MOVED: "Rescheduled",
    FreedBy.ENTERED_IN_ERROR: "Entered in error",
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class WaitlistForm(FlaskForm):
    patient_id = SelectField("Patient", coerce=http.parse_id, validate_choice=False)
    appointment_type_id = SelectField("Kind of visit", coerce=http.parse_id, validate_choice=False)
    provider_id = SelectField("Provider", coerce=http.parse_id, validate_choice=False)
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
    chosen = form.patient_id.data or http.parse_id(request.args.get("patient_id"))
    if request.method == "GET" and chosen:  # from a patient's page: "Add to the waitlist"
        form.patient_id.data = chosen
    form.patient_id.choices = patient_picker.choices(patient_picker.search_terms(), chosen)
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


def waiting_for(now: datetime, created_at: datetime) -> str:
    days = (now - created_at).days
    if days < 1:
        return "Today"
    if days < 14:
        return f"{days} day{'s' if days > 1 else ''}"
    return f"{days // 7} weeks"


def _render(form: WaitlistForm | None, code: int = 200):
    now = http.now()
    entries = waitlist_services.waiting_entries()
    booked = waitlist_services.booked_already(entries, now)
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
        open_times=waitlist_services.earliest_open(entries, now),
        booked=booked,
        search_days=waitlist_services.search_days,
        freed=waitlist_services.freed_slots(now, entries, booked),
        freed_by=FREED_BY_LABELS,
        max_freed=waitlist_services.MAX_FREED_SLOTS,
        freed_within_days=waitlist_services.FREED_WITHIN.days,
        form=form if manage else None,
        q=patient_picker.search_text(),
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
    if patient_picker.searching():
        return _render(form)
    if not form.validate_on_submit():
        return _render(form, 422)
    try:
        waitlist_services.add_entry(
            form.patient_id.data,
            form.appointment_type_id.data,
            form.provider_id.data,
            form.note.data or "",
            actor=current_user,
            now=http.now(),
            client=http.client_meta(),
        )
    except ValidationFailed as exc:
        db.session.rollback()
        form.patient_id.errors = exc.errors["patient_id"]
        return _render(form, 422)
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
    waitlist_services.remove_entry(
        entry, actor=current_user, now=http.now(), client=http.client_meta()
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
    provider_id = http.parse_id(request.form.get("provider_id"))
    provider = db.session.get(Provider, provider_id) if provider_id else None
    if start is None or provider is None:
        abort(400)
    entry = _waiting_entry(entry_id)
    if entry is None:
        return redirect(url_for(".waitlist"))
    if entry.provider_id not in (None, provider.id):
        abort(400)  # the form offers only matching providers: this was tampered with
    try:
        appointment, moved_from = waitlist_services.book_entry(
            entry, provider, start, actor=current_user, now=http.now(), client=http.client_meta()
        )
    except (waitlist_services.SlotPassed, services.DailyCapReached) as exc:
        db.session.rollback()
        flash(f"{exc} Nothing was booked.", "error")
        return redirect(url_for(".waitlist"))
    except services.SlotUnavailable:
        db.session.rollback()
        flash(
            "That time is no longer available (someone took it meanwhile, or the provider's "
            "hours changed); nothing was booked.",
            "error",
        )
        return redirect(url_for(".waitlist"))
    except (ValidationFailed, DomainError) as exc:
        db.session.rollback()
        messages = exc.errors.values() if isinstance(exc, ValidationFailed) else [[str(exc)]]
        flash(" ".join(m for ms in messages for m in ms), "error")
        return redirect(url_for(".waitlist"))
    db.session.commit()
    tz = http.clinic_tz()
    when = f"{appointment.start_at.astimezone(tz):%a %b %-d, %-I:%M %p} with {provider.name}"
    if moved_from is None:
        done = f"Booked: {entry.appointment_type.name}, {when}."
    else:
        done = (
            f"Moved earlier: {entry.appointment_type.name}, {when} "
            f"(was {moved_from.astimezone(tz):%a %b %-d, %-I:%M %p})."
        )
    flash(f"{done} Let the patient know.", "success")
    return redirect(url_for(".waitlist"))
