"""The patient's follow-up check-in: identity check, red-flag screen, answers. Flush, never commit.

A check-in is one CheckIn row per attempt: the screen stores it (with its triage), the answers
complete it with scores against the baseline of the patient's intake before the procedure.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from clinic import audit, http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.followup import questions
from clinic.followup import services as followup
from clinic.followup.models import CheckIn, StaffTask, Timepoint, TimepointStatus
from clinic.followup.scoring import Outcomes, load_outcomes, score_checkin
from clinic.intake.models import ConsultationRequest
from clinic.intake.rules import Triage, current_rules, triage
from clinic.models import AuditEvent, Patient
from clinic.notifications import services as notifications

logger = logging.getLogger(__name__)

MAX_IDENTITY_TRIES = 5
IDENTITY_ACTION = "checkin_identity"
UNLOCK_ACTION = "checkin_unlocked"  # staff reopened a locked link (after checking by phone)
LOCKED_TASK = "checkin_locked"
TIMEPOINT = "timepoint"
OPEN_STATUSES = (TimepointStatus.SCHEDULED, TimepointStatus.SENT, TimepointStatus.MISSED)
RED_FLAG_TASK_TITLE = "Check-in red flag: call the patient now"
WOUND_TASK_TITLE = "Check-in wound answer: a nurse calls the patient"


class CheckInLocked(DomainError):
    """Too many wrong dates of birth: the check-in link no longer opens."""


class CheckInClosed(DomainError):
    """The check-in was answered already, or its follow-up was cancelled."""


class CheckInStopped(DomainError):
    """A red flag stopped this check-in and staff have not acknowledged it yet."""


def outcomes() -> Outcomes:
    return load_outcomes()


def is_open(timepoint: Timepoint) -> bool:
    return timepoint.status in OPEN_STATUSES and timepoint.procedure.status == "active"


def _lock(timepoint: Timepoint) -> None:
    """Lock the timepoint until commit and re-read it: two submits of one check-in (a double
    click, two browsers) take turns, and the second sees what the first did."""
    db.session.flush()  # re-reading must not drop changes made to it so far
    db.session.get(Timepoint, timepoint.id, with_for_update=True, populate_existing=True)


def _ensure_open(timepoint: Timepoint) -> None:
    if not is_open(timepoint):
        raise CheckInClosed("This check-in is closed.")


# -- identity: the link alone is not enough (domain spec §4.2) -----------------------------------


def _identity_events(timepoint: Timepoint, outcome: str, action: str = IDENTITY_ACTION):
    return select(AuditEvent.id).where(
        AuditEvent.patient_id == timepoint.patient_id,
        AuditEvent.action == action,
        AuditEvent.resource_type == Timepoint.__tablename__,
        AuditEvent.resource_id == str(timepoint.id),
        AuditEvent.outcome == outcome,
    )


def identity_failures(timepoint: Timepoint) -> int:
    """Wrong dates of birth for this check-in since the last right one or staff's unlock."""
    last_reset = db.session.scalar(
        select(func.max(AuditEvent.id)).where(
            AuditEvent.id.in_(_identity_events(timepoint, "success"))
            | AuditEvent.id.in_(_identity_events(timepoint, "success", UNLOCK_ACTION))
        )
    )
    failures = _identity_events(timepoint, "failure")
    if last_reset is not None:
        failures = failures.where(AuditEvent.id > last_reset)
    return db.session.scalar(select(func.count()).select_from(failures.subquery())) or 0


def is_locked(timepoint: Timepoint) -> bool:
    return identity_failures(timepoint) >= MAX_IDENTITY_TRIES


def unlock(timepoint: Timepoint, *, actor, now: datetime, client: dict | None = None) -> bool:
    """Reopen a locked link (staff, having checked who they speak to); its lock task is done.
    False if it was not locked."""
    if not is_locked(timepoint):
        return False
    audit.record(
        UNLOCK_ACTION,
        actor=actor,
        patient_id=timepoint.patient_id,
        resource_type=Timepoint.__tablename__,
        resource_id=timepoint.id,
        client=client,
        now=now,
    )
    for task in db.session.scalars(
        select(StaffTask).where(
            StaffTask.kind == LOCKED_TASK,
            StaffTask.cause_type == Timepoint.__tablename__,
            StaffTask.cause_id == timepoint.id,
            StaffTask.done_at.is_(None),
        )
    ):
        followup.complete_task(task, actor=actor, now=now, note="link unlocked", client=client)
    db.session.flush()
    return True


def verify_identity(
    timepoint: Timepoint, raw_dob: str | None, *, now: datetime, client: dict | None
) -> None:
    """Check the typed date of birth; each wrong one is recorded, and enough of them lock."""
    # one guess at a time per check-in, so parallel guesses can't slip past the count
    db.session.scalar(select(Timepoint.id).where(Timepoint.id == timepoint.id).with_for_update())
    if is_locked(timepoint):
        raise CheckInLocked("This check-in is locked.")
    try:
        given = questions.parse_dob(raw_dob)
    except ValueError as exc:
        raise ValidationFailed({"date_of_birth": [str(exc)]}) from None
    patient = db.session.get(Patient, timepoint.patient_id)
    ok = given == patient.date_of_birth
    audit.record(
        IDENTITY_ACTION,
        patient_id=timepoint.patient_id,
        resource_type=Timepoint.__tablename__,
        resource_id=timepoint.id,
        outcome="success" if ok else "failure",
        client=client,
        now=now,
    )
    db.session.flush()
    if ok:
        return
    left = MAX_IDENTITY_TRIES - identity_failures(timepoint)
    if left <= 0:
        followup.add_task(
            timepoint.patient_id,
            LOCKED_TASK,
            "Check-in link locked after wrong dates of birth: call the patient",
            cause=timepoint,
            due_at=now,
            now=now,
        )
        raise CheckInLocked("This check-in is locked.")
    tries = "1 more try" if left == 1 else f"{left} more tries"
    raise ValidationFailed(
        {
            "date_of_birth": [
                "That date of birth does not match our records. Check it and try again "
                f"(you have {tries})."
            ]
        }
    )


# -- the red-flag screen ------------------------------------------------------------------------


def _latest(timepoint: Timepoint) -> CheckIn | None:
    return db.session.scalars(
        select(CheckIn).where(CheckIn.timepoint_id == timepoint.id).order_by(CheckIn.id.desc())
    ).first()


def pending_screen(timepoint: Timepoint) -> CheckIn | None:
    """The latest check-in of this timepoint if it is a clear screen still waiting for answers."""
    row = _latest(timepoint)
    if row is not None and row.triage == Triage.ROUTINE and not row.scores:
        return row
    return None


def stopped_by(timepoint: Timepoint) -> CheckIn | None:
    """The check-in whose red flag stopped this timepoint, while staff have not acknowledged
    the patient's red flag. Until they do, the link shows its emergency or urgent message in
    any browser (the stop is kept here, not in one browser's cookie) and takes no answers."""
    row = _latest(timepoint)
    if row is None or row.triage == Triage.ROUTINE:
        return None
    pause = followup.open_pause(timepoint.patient_id)
    # a pause opened later is another red flag's; this one's was acknowledged already
    return row if pause is not None and pause.created_at <= row.submitted_at else None


def _ensure_not_stopped(timepoint: Timepoint) -> None:
    if stopped_by(timepoint) is not None:
        raise CheckInStopped("A safety answer stopped this check-in; staff will call.")


def _fired(clean: dict[str, Any], timepoint: Timepoint, rules: Outcomes) -> list[dict]:
    fired = list(triage(clean, current_rules()).red_flags)
    if timepoint.wound_questions:
        screen = rules.screen
        for field_id, tier in screen["wound_items"].items():
            if clean.get(field_id) in screen["wound_firing_answers"]:
                fired.append({"field": field_id, "tier": tier, "answer": clean[field_id]})
    return fired


def _level(fired: list[dict]) -> Triage:
    tiers = {f["tier"] for f in fired}
    if Triage.EMERGENCY in tiers:
        return Triage.EMERGENCY
    return Triage.URGENT if Triage.URGENT in tiers else Triage.ROUTINE


def submit_red_flags(
    timepoint: Timepoint, values: dict[str, Any], *, now: datetime, client: dict | None
) -> CheckIn:
    """Store the screen; a positive answer pauses automation, adds a task and alerts staff."""
    _lock(timepoint)
    _ensure_open(timepoint)
    _ensure_not_stopped(timepoint)
    rules = outcomes()
    clean, errors = questions.validate(
        questions.screen_fields(timepoint.wound_questions, rules), values
    )
    if errors:
        raise ValidationFailed(errors)
    fired = _fired(clean, timepoint, rules)
    row = pending_screen(timepoint)
    if row is None:
        row = CheckIn(timepoint_id=timepoint.id, patient_id=timepoint.patient_id, mode="web")
        db.session.add(row)
    row.submitted_at = now
    row.form_version = questions.FORM_VERSION
    row.scoring_version = rules.version
    row.answers = clean
    row.red_flags = fired
    row.triage = _level(fired)
    row.scores, row.responders = {}, {}
    db.session.flush()
    if fired:
        _raise_alarm(row, now=now)
    audit.record_about(
        "red_flag_raised" if fired else "create",
        row,
        changed_fields=sorted(f["field"] for f in fired) if fired else sorted(clean),
        reason="check-in safety questions",
        client=client,
        now=now,
    )
    return row


def _raise_alarm(row: CheckIn, *, now: datetime) -> None:
    followup.pause_automation(row.patient_id, checkin_id=row.id, now=now)
    followup.add_task(
        row.patient_id, "red_flag_checkin", RED_FLAG_TASK_TITLE, cause=row, due_at=now, now=now
    )
    notifications.create_and_send(
        patient_id=row.patient_id,
        kind="staff_alert",
        cause_type="checkin",
        cause_id=row.id,
        now=now,
    )


# -- the answers --------------------------------------------------------------------------------


def baseline_for(
    patient_id: int, performed_on: date | None
) -> tuple[dict[str, int | None], date | None]:
    """The baseline of a procedure's check-ins and the clinic-local day it was given.

    The pre-procedure intake (domain spec 2.1, T0 = date of service): the patient's latest
    complete consultation request submitted on or before ``performed_on``, in the clinic's time
    zone. A request sent after the procedure does not re-baseline it (the clinician decides
    that). Without such a request there is no baseline (changes are left unscored); without a
    procedure (``None``), the latest complete request.
    """
    query = select(ConsultationRequest).where(
        ConsultationRequest.patient_id == patient_id, ConsultationRequest.complete
    )
    tz = http.clinic_tz()
    if performed_on is not None:
        next_day = datetime.combine(performed_on + timedelta(days=1), time(0), tz)
        query = query.where(ConsultationRequest.submitted_at < next_day)
    request = db.session.scalars(
        query.order_by(ConsultationRequest.submitted_at.desc(), ConsultationRequest.id.desc())
    ).first()
    if request is None:
        return {}, None
    answers, entries = request.answers or {}, request.clinician_entries or {}
    # a score staff typed from a paper form, else the patient's own at intake (as the signals)
    odi_pct = entries.get("odi_external_score")
    values = {
        "nprs_back": answers.get("nprs_back_now"),
        "nprs_leg": answers.get("nprs_leg_now"),
        "walk_minutes": answers.get("max_walking_minutes"),
        "stand_minutes": answers.get("max_standing_minutes"),
        "odi_pct": answers.get("odi_pct") if odi_pct is None else odi_pct,
    }
    return values, request.submitted_at.astimezone(tz).date()


def submit_checkin(
    timepoint: Timepoint, values: dict[str, Any], *, now: datetime, client: dict | None
) -> CheckIn:
    """Score the answers after a clear screen; close the timepoint and its pending messages."""
    _lock(timepoint)
    _ensure_open(timepoint)
    _ensure_not_stopped(timepoint)
    row = pending_screen(timepoint)
    if row is None:
        raise DomainError("Answer the safety questions first.")
    rules = outcomes()
    pack = questions.odi_pack_for(timepoint)
    fields = questions.question_fields(timepoint.wound_questions, pack, rules)
    clean, errors = questions.validate(fields, values)
    if errors:
        raise ValidationFailed(errors)
    odi_items = [clean[i] for i in questions.odi_ids(pack)] if pack else None
    baseline, _ = baseline_for(timepoint.patient_id, timepoint.procedure.performed_on)
    scores, responders = score_checkin(clean, baseline, rules, odi_items=odi_items)
    answers = {**row.answers, **clean}
    if pack is not None:
        answers |= {
            "odi_instrument": pack.instrument,
            "odi_version": pack.version,
            "odi_language": pack.language,
        }
    row.answers, row.scores, row.responders = answers, scores, responders
    row.submitted_at = now
    row.scoring_version = rules.version
    timepoint.status = TimepointStatus.COMPLETED
    timepoint.completed_at = now
    notifications.cancel_open(TIMEPOINT, timepoint.id, now=now, reason="check-in answered")
    db.session.flush()
    if any(clean.get(field) in answers for field, answers in rules.wound_review.items()):
        followup.add_task(
            timepoint.patient_id, "wound_review", WOUND_TASK_TITLE, cause=row, due_at=now, now=now
        )
    audit.record_about(
        "update",
        row,
        changed_fields=sorted(clean),
        reason="check-in answered",
        client=client,
        now=now,
    )
    return row
