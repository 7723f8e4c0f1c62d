"""Back-office pages to set up the schedule: hours, exceptions, time off, closures, types."""

from __future__ import annotations

from datetime import datetime

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    TimeField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from clinic import http
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.scheduling import settings
from clinic.scheduling.models import (
    AppointmentType,
    ClinicClosure,
    Location,
    Provider,
    ScheduleException,
    TimeOff,
)
from clinic.staff.calendar_grid import parse_local
from clinic.staff.roles import require
from clinic.staff.views import bp

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class LocationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    address_line1 = StringField("Address", validators=[DataRequired(), Length(max=200)])
    address_line2 = StringField("Address line 2", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[DataRequired(), Length(max=100)])
    state = StringField("State (2 letters)", validators=[DataRequired(), Length(min=2, max=2)])
    zip = StringField("ZIP", validators=[DataRequired(), Length(min=5, max=10)])
    phone = StringField("Phone", validators=[DataRequired(), Length(max=30)])
    timezone = StringField(
        "Time zone (the clinic's)",
        default=lambda: current_app.config["CLINIC_TIMEZONE"],
        validators=[DataRequired(), Length(max=64)],
    )


class ProviderForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    title = StringField("Title", validators=[Optional(), Length(max=60)])


class LocationEditForm(LocationForm):
    active = BooleanField("Open for booking (unticked: no new appointments here)")


class ProviderEditForm(ProviderForm):
    active = BooleanField("Takes new appointments (unticked: no new bookings)")


class HoursForm(FlaskForm):
    provider_id = SelectField("Provider", coerce=int)
    location_id = SelectField("Location", coerce=int)
    weekday = SelectField("Day", coerce=int, choices=list(enumerate(WEEKDAYS)))
    start_time = TimeField("From", validators=[DataRequired()])
    end_time = TimeField("To", validators=[DataRequired()])


class ExceptionForm(FlaskForm):
    provider_id = SelectField("Provider", coerce=int)
    location_id = SelectField("Location (for changed hours)", coerce=int)
    day = DateField("Date", validators=[DataRequired()])
    start_time = TimeField("From (empty = not working)", validators=[Optional()])
    end_time = TimeField("To", validators=[Optional()])
    reason = StringField("Reason", validators=[Optional(), Length(max=200)])


class TimeOffForm(FlaskForm):
    provider_id = SelectField("Provider", coerce=int)
    start = DateTimeLocalField("From", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    end = DateTimeLocalField("To", format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    reason = StringField("Reason", validators=[Optional(), Length(max=200)])


class ClosureForm(FlaskForm):
    location_id = SelectField("Location", coerce=int)
    day = DateField("Date", validators=[DataRequired()])
    reason = StringField("Reason", validators=[Optional(), Length(max=200)])


class TypeForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    duration_minutes = IntegerField("Duration (minutes)", validators=[NumberRange(5, 480)])
    buffer_before_minutes = IntegerField("Buffer before", validators=[NumberRange(0, 240)])
    buffer_after_minutes = IntegerField("Buffer after", validators=[NumberRange(0, 240)])
    step_minutes = IntegerField("Start every (minutes)", validators=[NumberRange(5, 240)])
    min_notice_minutes = IntegerField(
        "Minimum notice (minutes)", validators=[NumberRange(0, 86400)]
    )
    horizon_days = IntegerField("Booking horizon (days)", validators=[NumberRange(1, 730)])
    daily_cap = IntegerField(
        "Per-day cap per provider (empty = none)", validators=[Optional(), NumberRange(1, 100)]
    )
    patient_bookable = BooleanField("Patients may book it online")
    active = BooleanField("Offered (unticked: staff and patients can no longer book it)")


FORMS = {
    "location": LocationForm,
    "provider": ProviderForm,
    "hours": HoursForm,
    "exception": ExceptionForm,
    "time_off": TimeOffForm,
    "closure": ClosureForm,
}


def _forms(posted: str | None = None) -> dict[str, FlaskForm]:
    providers = [
        (p.id, p.name) for p in db.session.scalars(select(Provider).order_by(Provider.name))
    ]
    locations = [
        (loc.id, loc.name) for loc in db.session.scalars(select(Location).order_by(Location.name))
    ]
    forms = {}
    for name, cls in FORMS.items():
        form = cls(prefix=name) if name == posted else cls(prefix=name, formdata=None)
        if hasattr(form, "provider_id"):
            form.provider_id.choices = providers
        if hasattr(form, "location_id"):
            form.location_id.choices = locations
        forms[name] = form
    return forms


def _page(forms, code=200):
    tz = http.clinic_tz()
    locations = db.session.scalars(select(Location).order_by(Location.name)).all()
    providers = db.session.scalars(select(Provider).order_by(Provider.name)).all()
    return render_template(
        "staff/settings.html",
        forms=forms,
        weekdays=WEEKDAYS,
        tz=tz,
        locations=locations,
        providers=providers,
        names={
            "provider": {p.id: p.name for p in providers},
            "location": {loc.id: loc.name for loc in locations},
        },
        types=db.session.scalars(select(AppointmentType).order_by(AppointmentType.id)).all(),
        exceptions=db.session.scalars(
            select(ScheduleException)
            .where(ScheduleException.day >= http.now().astimezone(tz).date())
            .order_by(ScheduleException.day)
        ).all(),
        time_off=db.session.scalars(
            select(TimeOff).where(TimeOff.end_at > http.now()).order_by(TimeOff.start_at)
        ).all(),
        closures=db.session.scalars(
            select(ClinicClosure)
            .where(ClinicClosure.day >= http.now().astimezone(tz).date())
            .order_by(ClinicClosure.day)
        ).all(),
    ), code


@bp.get("/settings")
@login_required
@require("schedule.edit")
def schedule_settings():
    return _page(_forms())


@bp.post("/settings/<kind>")
@login_required
@require("schedule.edit")
def schedule_settings_add(kind: str):
    if kind not in FORMS:
        abort(404)
    forms = _forms(posted=kind)
    form = forms[kind]
    if not form.validate_on_submit():
        return _page(forms, 422)
    now, actor = http.now(), current_user
    data = {k: v for k, v in form.data.items() if k != "csrf_token"}
    try:
        _add(kind, data, actor=actor, now=now)
    except ValidationFailed as exc:
        db.session.rollback()
        for name, messages in exc.errors.items():
            if name in form:
                form[name].errors = list(messages)
            else:
                flash(" ".join(messages), "error")
        return _page(forms, 422)
    db.session.commit()
    flash("Saved.", "success")
    return redirect(url_for(".schedule_settings") + f"#{kind}")


def _get(model, ident):
    row = db.session.get(model, ident)
    if row is None:
        raise ValidationFailed(
            {"provider_id" if model is Provider else "location_id": ["Choose from the list."]}
        )
    return row


def _add(kind, data, *, actor, now):
    tz = http.clinic_tz()
    if kind == "location":
        settings.add_location(
            {k: (v or None) if k == "address_line2" else v for k, v in data.items()},
            actor=actor,
            now=now,
        )
    elif kind == "provider":
        settings.add_provider(data["name"], data["title"] or "", actor=actor, now=now)
    elif kind == "hours":
        settings.add_hours(
            _get(Provider, data["provider_id"]),
            _get(Location, data["location_id"]),
            data["weekday"],
            data["start_time"],
            data["end_time"],
            actor=actor,
            now=now,
        )
    elif kind == "exception":
        settings.add_exception(
            _get(Provider, data["provider_id"]),
            data["day"],
            data["start_time"],
            data["end_time"],
            data["reason"] or "",
            location=_get(Location, data["location_id"]),
            actor=actor,
            now=now,
        )
    elif kind == "time_off":
        settings.add_time_off(
            _get(Provider, data["provider_id"]),
            _local(data["start"], tz, "start"),
            _local(data["end"], tz, "end"),
            data["reason"] or "",
            actor=actor,
            now=now,
        )
    elif kind == "closure":
        settings.add_closure(
            _get(Location, data["location_id"]),
            data["day"],
            data["reason"] or "",
            actor=actor,
            now=now,
        )


def _local(naive: datetime, tz, name: str) -> datetime:
    """Clinic wall time, aware; a repeated hour means its first occurrence, a skipped one is
    refused (the same rule as the calendar's forms)."""
    return parse_local(naive.strftime("%Y-%m-%dT%H:%M"), tz, name)


# The lists' Remove buttons: the URL's kind is the page's section, and its anchor.
REMOVE_KINDS = {
    "hours": ("provider_hours", "Hours removed."),
    "exception": ("schedule_exception", "Date exception removed."),
    "time_off": ("time_off", "Time off removed."),
    "closure": ("clinic_closure", "Closure removed."),
}


@bp.post("/settings/<kind>/<int:row_id>/delete")
@login_required
@require("schedule.edit")
def schedule_row_delete(kind: str, row_id: int):
    if kind not in REMOVE_KINDS:
        abort(404)
    resource_type, message = REMOVE_KINDS[kind]
    row = db.session.get(settings.REMOVABLE[resource_type], row_id) or abort(404)
    if not FlaskForm().validate_on_submit():
        abort(400)
    settings.remove(row, actor=current_user, now=http.now())
    db.session.commit()
    flash(message, "success")
    return redirect(url_for(".schedule_settings") + f"#{kind}")


def _edit_page(form, row, kind: str, code: int = 200):
    return render_template("staff/settings_edit.html", form=form, row=row, kind=kind), code


def _save_edit(form, row, kind: str, update):
    """Validate, run the service, commit; the page again with field errors on refusal."""
    if not form.validate_on_submit():
        return _edit_page(form, row, kind, 422)
    values = {k: v for k, v in form.data.items() if k != "csrf_token"}
    try:
        update(row, values, actor=current_user, now=http.now())
    except ValidationFailed as exc:
        db.session.rollback()
        for name, messages in exc.errors.items():
            form[name].errors = list(messages)
        return _edit_page(form, row, kind, 422)
    db.session.commit()
    flash(f"{row.name} saved.", "success")
    if not row.active:
        held = settings.future_appointments(http.now(), **{kind: row})
        if held:
            flash(
                f"{row.name} takes no new bookings, but {held} appointment"
                f"{'s' if held != 1 else ''} from now on still stand: move or cancel them "
                "in the calendar.",
                "error",
            )
    return redirect(url_for(".schedule_settings") + f"#{kind}")


@bp.route("/settings/locations/<int:location_id>", methods=["GET", "POST"])
@login_required
@require("schedule.edit")
def schedule_location(location_id: int):
    location = db.session.get(Location, location_id) or abort(404)
    form = LocationEditForm(obj=location)
    if request.method == "GET":
        return _edit_page(form, location, "location")
    form.address_line2.data = form.address_line2.data or None
    return _save_edit(form, location, "location", settings.update_location)


@bp.route("/settings/providers/<int:provider_id>", methods=["GET", "POST"])
@login_required
@require("schedule.edit")
def schedule_provider(provider_id: int):
    provider = db.session.get(Provider, provider_id) or abort(404)
    form = ProviderEditForm(obj=provider)
    if request.method == "GET":
        return _edit_page(form, provider, "provider")
    form.title.data = form.title.data or ""
    return _save_edit(form, provider, "provider", settings.update_provider)


@bp.route("/settings/types/<int:type_id>", methods=["GET", "POST"])
@login_required
@require("schedule.edit")
def schedule_type(type_id: int):
    appointment_type = db.session.get(AppointmentType, type_id) or abort(404)
    form = TypeForm(obj=appointment_type)
    code = 200
    if request.method == "POST":
        if form.validate_on_submit():
            values = {k: v for k, v in form.data.items() if k != "csrf_token"}
            try:
                settings.update_type(appointment_type, values, actor=current_user, now=http.now())
            except ValidationFailed as exc:
                db.session.rollback()
                for name, messages in exc.errors.items():
                    form[name].errors = list(messages)
            else:
                db.session.commit()
                flash("Saved.", "success")
                return redirect(url_for(".schedule_settings") + "#types")
        code = 422
    return render_template(
        "staff/settings_type.html", form=form, appointment_type=appointment_type
    ), code
