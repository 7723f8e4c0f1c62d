"""Send one claimed message. The row stays locked while it is sent, so a cancel racing the
send waits for it, and a second copy of the task finds the row already sent."""

from __future__ import annotations

import functools
import logging
import random
import traceback
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload

from clinic import email
from clinic.extensions import db
from clinic.followup import checkin
from clinic.followup.models import AutomationPause, StaffTask, Timepoint, TimepointStatus
from clinic.models import Patient
from clinic.notifications import emails, timepoints
from clinic.notifications.models import STAFF_KINDS, Notification, Status, Suppression
from clinic.scheduling.models import ACTIVE_STATUSES, Appointment, AppointmentStatus

logger = logging.getLogger(__name__)

ESSENTIAL_KINDS = ("confirmation", "procedure_notice", "update", "cancellation")


def deliver(notification_id: int, *, now: datetime) -> str:
    """Send the message if it is still claimed and still wanted; commit its new state."""
    found = db.session.execute(_claimed_row(), {"notification_id": notification_id}).first()
    if found is None or found.Notification.status != Status.SENDING:
        db.session.rollback()
        return "not-claimed"
    row = found.Notification
    outcome = _deliver(row, found, now)
    row.updated_at = now
    db.session.commit()
    logger.info("notification %s (%s) %s", row.id, row.template, outcome)
    return outcome


@functools.cache
def _claimed_row():
    """One statement: the row, locked, with what the checks and the message need.

    The patient, the appointment with its location and type (when the cause is one), whether
    the patient's automation is paused and whether their address is suppressed. Only the
    notification row is locked (``FOR UPDATE OF``): a cancel racing the send waits for it, and
    its status, read after the wait, says whether the cancel came first. Built once (building
    it cost more CPU than running it), bound to ``notification_id`` on each call.
    """
    paused = (
        select(AutomationPause.id)
        .where(
            AutomationPause.patient_id == Notification.patient_id,
            AutomationPause.acknowledged_at.is_(None),
        )
        .exists()
    )
    suppressed = (
        select(Suppression.reason)
        .where(Suppression.address == func.lower(func.trim(Patient.email)))
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(
            Notification,
            Patient,
            Appointment,
            paused.label("paused"),
            suppressed.label("suppressed"),
        )
        .outerjoin(Patient, Patient.id == Notification.patient_id)
        .outerjoin(
            Appointment,
            and_(Notification.cause_type == "appointment", Appointment.id == Notification.cause_id),
        )
        .options(joinedload(Appointment.location), joinedload(Appointment.appointment_type))
        .where(Notification.id == bindparam("notification_id"))
        .with_for_update(of=Notification)
        .execution_options(populate_existing=True)
    )


def _deliver(row: Notification, found, now: datetime) -> str:
    # ``found`` holds the patient and the appointment for the whole send: the session's
    # identity map keeps objects only while something references them, so the lookups by id
    # in emails.build are answered from it instead of the database.
    if row.channel == "task" and row.cause_type == "timepoint" and _being_answered(row):
        # The patient is submitting this check-in right now: waiting for their transaction,
        # which waits for this row's lock to cancel it, would deadlock. Decide after it.
        row.status, row.claimed_at = Status.PENDING, None
        row.due_at = now + TASK_RETRY
        return "retry"
    reason = _not_wanted(row, found, now)
    if reason is not None:
        status, text = reason
        row.status, row.last_error = status, text
        return status
    if row.channel == "task":
        _task_for(row, now)
        row.status, row.sent_at = Status.SENT, now
        return "task"
    try:
        msg = emails.build(row, now=now)
    except Exception as exc:  # a broken template must not leave the row claimed forever
        # The type and the frames only: an exception's text may quote what it was given.
        logger.error(
            "notification %s (%s) could not be composed: %s\n%s",
            row.id,
            row.template,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        row.status, row.last_error = Status.FAILED, f"could not compose: {type(exc).__name__}"
        return "failed"
    row.attempts += 1
    try:
        email.send(msg)
    except email.PermanentSendError as exc:
        row.status, row.last_error = Status.FAILED, str(exc)[:200]
        if exc.bad_mailbox and row.kind not in STAFF_KINDS:
            suppress(msg["To"].addresses[0].addr_spec, "bounced", str(exc), now=now)
        return "failed"
    except email.TemporarySendError as exc:
        config = current_app.config
        if row.attempts >= config["NOTIFY_MAX_ATTEMPTS"]:
            row.status = Status.FAILED
            row.last_error = f"gave up after {row.attempts} attempts: {exc}"[:200]
            return "failed"
        base = config["EMAIL_RETRY_BASE_SECONDS"]
        delay = min(3600.0, base * 2 ** (row.attempts - 1)) * random.uniform(0.8, 1.2)
        row.status, row.claimed_at = Status.PENDING, None
        row.due_at = now + timedelta(seconds=delay)
        row.last_error = str(exc)[:200]
        return "retry"
    row.status, row.sent_at, row.last_error = Status.SENT, now, None
    if row.cause_type == "timepoint":
        _mark_invited(row.cause_id)
    return "sent"


def _mark_invited(timepoint_id: int) -> None:
    """A scheduled timepoint whose invitation went out is ``sent``. Skipped when a check-in
    submit holds the timepoint (it waits for this row to cancel its messages: waiting for it
    here would deadlock), as that submit completes the timepoint anyway."""
    timepoint = db.session.scalars(
        select(Timepoint)
        .where(Timepoint.id == timepoint_id, Timepoint.status == TimepointStatus.SCHEDULED)
        .with_for_update(skip_locked=True)
    ).first()
    if timepoint is not None:
        timepoint.status = TimepointStatus.SENT


# What staff read in a confidential-contact task: which message to give by other means.
MESSAGE_NAMES = {
    "appointment_confirmation": "appointment confirmation",
    "appointment_update": "appointment change notice",
    "appointment_cancellation": "cancellation notice",
    "appointment_reminder": "appointment reminder",
    "missed_appointment": "missed-appointment message",
    "checkin_invitation": "follow-up check-in invitation",
    "intake_acknowledgement": "request acknowledgement",
}


def _not_wanted(row: Notification, found, now: datetime) -> tuple[str, str] | None:
    """(status, reason) when this message must not go out now, else None."""
    if row.kind in STAFF_KINDS:
        return None
    patient = found.Patient
    if patient is None:
        return Status.SKIPPED, "no patient"
    if row.cause_type == "appointment":
        verdict = _appointment_verdict(row, found.Appointment, now)
    elif row.cause_type == "timepoint":
        verdict = _timepoint_verdict(row, now)
    else:
        verdict = None
    if verdict is not None:
        return verdict
    if row.routine and found.paused:
        row.due_at = now  # waits, claimed by no dispatcher, until staff acknowledge
        return Status.PENDING, "paused until staff acknowledge a check-in"
    if row.channel == "task":
        return None
    if patient.confidential_comms_request:
        what = MESSAGE_NAMES.get(row.template, row.kind.replace("_", " "))
        _staff_task(
            patient.id,
            "confidential_contact",
            "Contact the patient as they asked (confidential-communication request): "
            f"their {what} was not emailed",
            row,
            now,
        )
        return Status.SKIPPED, "confidential-communication request"
    if not patient.email:
        return Status.SKIPPED, "no email address"
    if not patient.consent_email:
        return Status.SKIPPED, "no email consent"
    if found.suppressed == "bounced" or (found.suppressed and row.routine):
        return Status.SKIPPED, f"address {found.suppressed}"
    return None


def _appointment_verdict(
    row: Notification, appointment: Appointment | None, now: datetime
) -> tuple[str, str] | None:
    if appointment is None:
        return Status.CANCELLED, "appointment gone"
    if row.kind == "cancellation":
        return None
    if appointment.status == AppointmentStatus.CANCELLED:
        return Status.CANCELLED, "appointment cancelled"
    if row.kind == "no_show":
        ok = appointment.status == AppointmentStatus.NOSHOW
        return None if ok else (Status.CANCELLED, f"appointment {appointment.status}")
    if appointment.status not in ACTIVE_STATUSES:
        return Status.CANCELLED, f"appointment {appointment.status}"
    if row.kind not in ESSENTIAL_KINDS and appointment.start_at <= now:
        return Status.SKIPPED, "appointment already started"
    return None


def _timepoint_verdict(row: Notification, now: datetime) -> tuple[str, str] | None:
    verdict = timepoints.held_back(row, now)
    if verdict is not None:
        return verdict
    if row.kind == "checkin_no_response":
        timepoint = db.session.get(Timepoint, row.cause_id)
        if checkin.stopped_by(timepoint) is not None:
            # The patient answered: staff have the red-flag task; not a non-responder.
            return Status.SKIPPED, "check-in stopped by a red flag"
    return None


TASK_RETRY = timedelta(minutes=5)


def _being_answered(row: Notification) -> bool:
    """Lock the row's timepoint for this transaction, unless a check-in submit holds it."""
    locked = db.session.scalar(
        select(Timepoint.id).where(Timepoint.id == row.cause_id).with_for_update(skip_locked=True)
    )
    return locked is None and db.session.get(Timepoint, row.cause_id) is not None


def _task_for(row: Notification, now: datetime) -> None:
    timepoint = db.session.get(Timepoint, row.cause_id)
    if timepoint.status in (TimepointStatus.SCHEDULED, TimepointStatus.SENT):
        timepoint.status = TimepointStatus.MISSED
    _staff_task(
        row.patient_id,
        "followup_no_response",
        f"No answer to the {timepoint.label} check-in: call the patient",
        row,
        now,
    )


def _staff_task(patient_id: int, kind: str, title: str, row: Notification, now: datetime):
    db.session.add(
        StaffTask(
            patient_id=patient_id,
            kind=kind,
            title=title,
            cause_type="notification",
            cause_id=row.id,
            due_at=now,
            created_at=now,
        )
    )


def suppress(address: str, reason: str, detail: str = "", *, now: datetime) -> Suppression:
    """Stop mailing an address (bounced: everything; unsubscribed: routine messages).

    One statement (an upsert): two workers bouncing messages to one address at once, or an
    unsubscribe racing a bounce, both succeed, and a bounce wins over an unsubscribe. A plain
    look-then-insert lost that race with an IntegrityError quoting the address.
    """
    address = address.strip().lower()
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Suppression).values(
        address=address, reason=reason, detail=detail[:200], created_at=now
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[Suppression.address],
            set_={"reason": statement.excluded.reason, "detail": statement.excluded.detail},
            where=statement.excluded.reason == "bounced",
        )
    )
    return db.session.scalars(
        select(Suppression)
        .where(Suppression.address == address)
        .execution_options(populate_existing=True)
    ).one()
