"""Record a procedure and create its follow-up plan; staff tasks and pauses. Flush, never commit."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import func, select

from clinic import audit, http
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.followup import plan as plans
from clinic.followup.models import (
    AutomationPause,
    CheckIn,
    Procedure,
    StaffTask,
    Timepoint,
    TimepointStatus,
)
from clinic.models import Patient, StaffUser
from clinic.notifications import services as notifications
from clinic.scheduling.models import Provider

TIMEPOINT = "timepoint"
LATE_RECORDING = timedelta(days=365)


def current_plan() -> plans.Plan:
    return plans.load(current_app.config.get("FOLLOWUP_PLAN_FILE") or "")


def _invite_at(day: date, now: datetime) -> datetime:
    """The opening of the send hours on ``day``, on the clinic's clock (or now, if later)."""
    tz = http.clinic_tz()
    start, _ = current_app.config["NOTIFY_SEND_HOURS"]
    moment = datetime.combine(day, time(start), tz).astimezone(now.tzinfo)
    return max(moment, now)


def record_procedure(
    patient: Patient | None,
    provider: Provider | None,
    performed_on: date | None,
    *,
    actor: StaffUser | None,
    now: datetime,
    client: dict | None = None,
) -> Procedure:
    """A procedure and its plan: a timepoint per enabled point, an invitation, re-sends inside
    the window, and a staff task for non-responders."""
    today = now.astimezone(http.clinic_tz()).date()
    errors: dict[str, list[str]] = {}
    if patient is None:
        errors["patient_id"] = ["No such patient."]
    if provider is None or not provider.active:
        errors["provider_id"] = ["No such provider."]
    if performed_on is None:
        errors["performed_on"] = ["Give the date of service as YYYY-MM-DD."]
    elif performed_on > today:
        errors["performed_on"] = ["The date of service can't be in the future."]
    elif performed_on < today - LATE_RECORDING:
        errors["performed_on"] = ["The date of service is more than a year ago."]
    if not errors:
        # One recording per patient at a time (a double-submitted form): the second waits
        # here, then finds the first's procedure.
        _lock_patient(patient.id)
    if not errors and db.session.scalar(
        select(Procedure.id).where(
            Procedure.patient_id == patient.id,
            Procedure.performed_on == performed_on,
            Procedure.status == "active",
        )
    ):
        errors["performed_on"] = ["A procedure on this day is already recorded."]
    if errors:
        raise ValidationFailed(errors)
    plan = current_plan()
    procedure = Procedure(
        patient=patient,
        provider=provider,
        performed_on=performed_on,
        plan_version=plan.version,
        recorded_by_id=actor.id if actor else None,
        created_at=now,
    )
    db.session.add(procedure)
    db.session.flush()
    for point in plan.enabled():
        _plan_point(procedure, plan, point, today=today, now=now)
    audit.record_about(
        "create",
        procedure,
        actor=actor,
        changed_fields=["performed_on", "provider_id"],
        reason=f"procedure recorded, plan {plan.version}",
        client=client,
        now=now,
    )
    return procedure


def _plan_point(procedure, plan, point, *, today: date, now: datetime) -> Timepoint:
    due = plans.due_on(point, procedure.performed_on)
    start, end = plans.window(point, due)
    timepoint = Timepoint(
        procedure=procedure,
        patient_id=procedure.patient_id,
        code=point.code,
        label=point.label,
        due_on=due,
        window_start=start,
        window_end=end,
        wound_questions=point.wound_questions,
        odi_questions=point.odi_questions,
        status=TimepointStatus.SCHEDULED,
    )
    db.session.add(timepoint)
    db.session.flush()
    if end < today:  # recorded too late for this one
        timepoint.status = TimepointStatus.MISSED
        return timepoint
    common = {
        "patient_id": procedure.patient_id,
        "cause_type": TIMEPOINT,
        "cause_id": timepoint.id,
        "now": now,
    }
    invite_at = _invite_at(due, now)
    notifications.create(kind="checkin", due_at=invite_at, routine=True, **common)
    # Re-sends and the staff task count from the invitation as sent: a late recording invites
    # now, not on the due day, and must not send a re-send along with it.
    invited_on = invite_at.astimezone(http.clinic_tz()).date()
    for number, day in enumerate(plans.resend_days(plan, invited_on, end), start=1):
        notifications.create(
            kind=f"checkin_resend_{number}", due_at=_invite_at(day, now), routine=True, **common
        )
    notifications.create(
        kind="checkin_no_response",
        channel="task",
        due_at=_invite_at(plans.task_day(plan, invited_on, end), now),
        **common,
    )
    if point.visit:
        add_task(
            procedure.patient_id,
            "book_visit",
            f"Book the {point.label.lower()} visit ({start:%b %-d} to {end:%b %-d})",
            cause=timepoint,
            due_at=now,
            now=now,
        )
    return timepoint


def add_task(
    patient_id: int, kind: str, title: str, *, cause, due_at: datetime, now: datetime
) -> StaffTask:
    task = StaffTask(
        patient_id=patient_id,
        kind=kind,
        title=title,
        cause_type=cause.__tablename__ if cause is not None else None,
        cause_id=cause.id if cause is not None else None,
        due_at=due_at,
        created_at=now,
    )
    db.session.add(task)
    return task


def complete_task(
    task: StaffTask, *, actor: StaffUser, now: datetime, note: str = "", client=None
) -> None:
    """Mark a task done, with who did it and their note."""
    if task.done_at is None:
        task.done_at, task.done_by_id = now, actor.id
        task.note = note.strip()[:1000] or None
        audit.record_about(
            "update",
            task,
            actor=actor,
            changed_fields=["done_at"],
            reason=f"task done ({task.kind})",
            client=client,
            now=now,
        )


def _lock_patient(patient_id: int) -> None:
    """Serialize this patient's follow-up changes until commit (SQLite: serialized already).

    FOR NO KEY UPDATE, not FOR UPDATE: a row this transaction inserted that refers to the
    patient (a check-in) holds a key-share lock on it, which FOR UPDATE would have to wait
    for; two check-ins of one patient would then wait for each other.
    """
    db.session.execute(
        select(Patient.id).where(Patient.id == patient_id).with_for_update(key_share=True)
    )


def pause_automation(patient_id: int, *, checkin_id: int | None, now: datetime) -> AutomationPause:
    """Hold routine messages to the patient until staff acknowledge (one open pause at most)."""
    # Two red flags at once would both find no open pause and both insert one (the unique
    # index refuses the second: a 500 on an emergency answer). The open pause is locked too:
    # one being acknowledged right now is waited for, and then no longer joined.
    _lock_patient(patient_id)
    pause = db.session.scalar(
        select(AutomationPause)
        .where(AutomationPause.patient_id == patient_id, AutomationPause.acknowledged_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if pause is None:
        pause = AutomationPause(patient_id=patient_id, checkin_id=checkin_id, created_at=now)
        db.session.add(pause)
        db.session.flush()
    return pause


def open_pause(patient_id: int) -> AutomationPause | None:
    return db.session.scalar(
        select(AutomationPause).where(
            AutomationPause.patient_id == patient_id, AutomationPause.acknowledged_at.is_(None)
        )
    )


def red_flags_held(pause: AutomationPause) -> int:
    """How many red-flag check-ins this pause holds so far. The acknowledge form carries the
    number its page showed: one that arrived since must be looked at before messages resume."""
    return db.session.scalar(
        select(func.count(CheckIn.id)).where(
            CheckIn.patient_id == pause.patient_id,
            CheckIn.triage.in_(("emergency", "urgent")),
            CheckIn.submitted_at >= pause.created_at,
        )
    )


def acknowledge_pause(
    pause: AutomationPause,
    *,
    actor: StaffUser,
    now: datetime,
    note: str = "",
    client: dict | None = None,
) -> None:
    """Staff have looked at the red flag: routine messages resume (the ones now due go first)."""
    pause.acknowledged_at, pause.acknowledged_by_id = now, actor.id
    pause.note = note.strip()[:1000] or None
    audit.record_about(
        "update",
        pause,
        actor=actor,
        changed_fields=["acknowledged_at"],
        reason="automation resumed",
        client=client,
        now=now,
    )


def timepoints_for(patient_id: int) -> list[Timepoint]:
    return list(
        db.session.scalars(
            select(Timepoint)
            .where(Timepoint.patient_id == patient_id)
            .order_by(Timepoint.due_on, Timepoint.id)
        )
    )
