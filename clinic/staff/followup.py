"""Post-procedure follow-up in the back office: record a procedure (which plans its check-ins),
a patient's follow-up page with the outcome chart, and the task list with red-flag pauses.

Routes on the staff blueprint. The chart is inline SVG built by ``charts`` (no script, no
third-party asset) with a table of the same figures. Flash messages and URLs carry no names.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import SelectField, StringField
from wtforms.validators import StopValidation, ValidationError
from wtforms.widgets import DateInput

from clinic import audit, http
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.followup import checkin, questions, services
from clinic.followup.models import CheckIn, Procedure, Timepoint
from clinic.models import Patient
from clinic.scheduling.models import Provider
from clinic.staff import charts, patient_picker
from clinic.staff.forms import NoteForm
from clinic.staff.roles import require
from clinic.staff.views import bp

DAY_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")


class DayField(StringField):
    """A date typed as YYYY-MM-DD (the date picker) or MM/DD/YYYY; ``data`` is None if neither."""

    widget = DateInput()

    def process_formdata(self, valuelist):
        self.raw_text = (valuelist[0] if valuelist else "").strip()[:40]
        self.data = None
        for fmt in DAY_FORMATS:
            try:
                self.data = datetime.strptime(self.raw_text, fmt).date()
                break
            except ValueError:
                continue

    def _value(self) -> str:
        return getattr(self, "raw_text", "") or (self.data.isoformat() if self.data else "")


def _valid_day(form, field) -> None:
    if not field.raw_data or not field.raw_data[0].strip():
        raise StopValidation("Give the date of service.")
    if field.data is None or not http.sane_moment(field.data):
        raise StopValidation("Give the date of service as YYYY-MM-DD, e.g. 2026-11-20.")


class ProcedureForm(FlaskForm):
    patient_id = SelectField("Patient", coerce=http.parse_id, validate_choice=False)
    performed_on = DayField("Date of service", validators=[_valid_day])
    provider_id = SelectField("Performed by", coerce=http.parse_id, validate_choice=False)

    def validate_patient_id(self, field):
        if field.data is None:
            raise ValidationError("Choose a patient.")

    def validate_provider_id(self, field):
        if field.data is None:
            raise ValidationError("Choose the provider who performed it.")


def _procedure_form() -> ProcedureForm:
    form = ProcedureForm()
    chosen = form.patient_id.data or http.parse_id(request.args.get("patient_id"))
    if request.method == "GET" and chosen:
        form.patient_id.data = chosen
    form.patient_id.choices = patient_picker.choices(patient_picker.search_terms(), chosen)
    providers = db.session.scalars(
        select(Provider).where(Provider.active.is_(True)).order_by(Provider.name)
    )
    form.provider_id.choices = [("", "Choose a provider")] + [(p.id, p.name) for p in providers]
    return form


@bp.route("/procedures/new", methods=["GET", "POST"])
@login_required
@require("followup.record")
def record_procedure():
    form = _procedure_form()
    searching = patient_picker.searching()
    if not searching and form.validate_on_submit():
        try:
            procedure = services.record_procedure(
                db.session.get(Patient, form.patient_id.data),
                db.session.get(Provider, form.provider_id.data),
                form.performed_on.data,
                actor=current_user,
                now=http.now(),
                client=http.client_meta(),
            )
        except ValidationFailed as exc:
            db.session.rollback()
            for name, messages in exc.errors.items():
                getattr(form, name, form.performed_on).errors = list(messages)
        else:
            db.session.commit()
            flash(f"Procedure recorded: {len(procedure.timepoints)} follow-up points.", "success")
            return redirect(url_for(".patient_followup", patient_id=procedure.patient_id))
    if request.method == "GET" or searching:
        # The form lists patients by name and birth date: an access like any other.
        audit.record(
            "search",
            actor=current_user,
            resource_type="patient",
            reason="procedure form patient list",
            client=http.client_meta(),
            now=http.now(),
        )
        db.session.commit()
    code = 422 if form.errors else 200
    terms = patient_picker.search_text()
    return render_template("staff/procedure_new.html", form=form, q=terms), code


def _latest(procedures: list[Procedure]) -> Procedure | None:
    """The procedure the chart's baseline belongs to: the latest active one, else the latest."""
    return next((p for p in procedures if p.status == "active"), next(iter(procedures), None))


def _baseline_rows(
    procedures: list[Procedure],
    baselines: dict[int, tuple[dict, date | None]],
    fallback: tuple[dict, date | None],
) -> list[tuple[date, dict, str]]:
    """(day, values, label) of each baseline in the table: one per procedure's intake."""
    if not procedures:
        values, day = fallback
        return [(day, values, "Baseline (intake)")] if day else []
    rows, seen = [], set()
    for procedure in reversed(procedures):  # oldest first
        values, day = baselines[procedure.id]
        if day is None or day in seen:
            continue
        seen.add(day)
        label = "Baseline (intake)"
        if len(procedures) > 1:
            label += f" before the procedure of {procedure.performed_on:%b %-d, %Y}"
        rows.append((day, values, label))
    return rows


def _table_rows(baseline_rows: list[tuple[date, dict, str]], observations) -> list[dict]:
    """The outcome table, oldest first: baseline rows, and the check-ins, each compared with
    the baseline of its own procedure."""
    rows = [
        {"day": day, "label": label, "values": values, "baseline": None, "order": 0}
        for day, values, label in baseline_rows
    ]
    rows += [
        {"day": o.day, "label": o.label, "values": o.scores, "baseline": o.baseline, "order": 1}
        for o in observations
    ]
    return sorted(rows, key=lambda r: (r["day"], r["order"]))


def _outcomes(patient: Patient) -> dict:
    tz = http.clinic_tz()
    procedures = list(
        db.session.scalars(
            select(Procedure)
            .options(selectinload(Procedure.timepoints), joinedload(Procedure.provider))
            .where(Procedure.patient_id == patient.id)
            .order_by(Procedure.performed_on.desc(), Procedure.id.desc())
        )
    )
    checkins = list(
        db.session.scalars(
            select(CheckIn)
            .options(joinedload(CheckIn.timepoint))
            .where(CheckIn.patient_id == patient.id)
            .order_by(CheckIn.submitted_at, CheckIn.id)
        )
    )
    done = [p.performed_on for p in procedures if p.status == "active"]
    locked = {
        t.id
        for p in procedures
        for t in p.timepoints
        if checkin.is_open(t) and checkin.is_locked(t)
    }
    # Each procedure's check-ins were scored against the intake before that procedure.
    baselines = {p.id: checkin.baseline_for(patient.id, p.performed_on) for p in procedures}
    latest = _latest(procedures)
    baseline, baseline_day = (
        baselines[latest.id] if latest else checkin.baseline_for(patient.id, None)
    )
    observations = [
        charts.Observation(
            c.submitted_at.astimezone(tz).date(),
            c.scores or {},
            c.timepoint.label if c.timepoint else "Check-in",
            baselines.get(c.timepoint.procedure_id, ({}, None))[0] if c.timepoint else baseline,
        )
        for c in checkins
        if c.scores
    ]
    table = _table_rows(
        _baseline_rows(procedures, baselines, (baseline, baseline_day)), observations
    )
    today = http.now().astimezone(tz).date()
    return {
        "procedures": procedures,
        "checkins": checkins,
        "locked": locked,
        "baseline": baseline,
        "baseline_day": baseline_day,
        "latest_procedure": latest if len(procedures) > 1 else None,
        "observations": observations,
        "table_rows": table,
        "panels": charts.outcome_panels(baseline, baseline_day, observations, done, today=today),
    }


@bp.get("/patients/<int:patient_id>/follow-up")
@login_required
@require("followup.outcomes")
def patient_followup(patient_id: int):
    patient = db.session.get(Patient, patient_id) or abort(404)
    data = _outcomes(patient)
    audit.record(
        "view",
        actor=current_user,
        patient_id=patient.id,
        resource_type="followup",
        resource_id=patient.id,
        reason="follow-up and outcomes",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    pause = services.open_pause(patient.id)
    return render_template(
        "staff/followup.html",
        patient=patient,
        pause=pause,
        pause_held=services.red_flags_held(pause) if pause else 0,
        note_form=NoteForm(formdata=None),
        delta=charts.delta,
        global_change_words=dict(questions.GLOBAL_CHANGE_CHOICES),
        **data,
    )


@bp.post("/timepoints/<int:timepoint_id>/unlock")
@login_required
@require("followup.unlock")
def unlock_checkin(timepoint_id: int):
    """Reopen a check-in link locked by wrong dates of birth (after checking who is calling)."""
    timepoint = db.session.get(Timepoint, timepoint_id, with_for_update=True) or abort(404)
    back = url_for(".patient_followup", patient_id=timepoint.patient_id)
    if not NoteForm().validate_on_submit():
        db.session.rollback()
        flash("The form expired; try again.", "error")
        return redirect(back)
    if checkin.unlock(timepoint, actor=current_user, now=http.now(), client=http.client_meta()):
        db.session.commit()
        flash("Check-in link unlocked: the patient can open it again.", "success")
    else:
        db.session.rollback()
        flash("That check-in link was not locked.", "error")
    return redirect(back)
