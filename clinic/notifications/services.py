"""Create, re-time, cancel and resend message rows. Flush, never commit.

Every message is created in the transaction of its cause. Messages that go at once are claimed
here and handed to the send task right after that transaction commits (``outbox``); the
dispatcher picks up everything else, and anything the broker lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from clinic import audit, database, http
from clinic.errors import DomainError
from clinic.extensions import db
from clinic.followup.models import StaffTask
from clinic.models import StaffUser
from clinic.notifications import outbox, schedules, timepoints
from clinic.notifications.models import INTAKE_ALERT_KINDS, OPEN_STATUSES, Notification, Status
from clinic.scheduling.models import Appointment, AppointmentStatus

APPOINTMENT = "appointment"

# kind -> template pair under templates/emails/
TEMPLATES = {
    "confirmation": "appointment_confirmation",
    "procedure_notice": "appointment_confirmation",
    "update": "appointment_update",
    "cancellation": "appointment_cancellation",
    "reminder_72h": "appointment_reminder",
    "reminder_48h": "appointment_reminder",
    "reminder_24h": "appointment_reminder",
    "no_show": "missed_appointment",
    "checkin": "checkin_invitation",
    "checkin_resend_1": "checkin_invitation",
    "checkin_resend_2": "checkin_invitation",
    "checkin_no_response": "staff_task",
    "staff_alert": "staff_checkin_alert",
    "intake_acknowledgement": "intake_acknowledgement",
    "intake_alert_emergency": "staff_intake_alert",
    "intake_alert_urgent": "staff_intake_alert",
}

REQUEST = "consultation_request"


def schedule() -> schedules.Schedule:
    return schedules.load(current_app.config.get("NOTIFY_SCHEDULES_FILE") or "")


def new_message_id() -> str:
    domain = current_app.config["MAIL_FROM"].rpartition("@")[2].strip("> ") or "clinic.example"
    return f"<{uuid.uuid4().hex}@{domain}>"


def create(*, keep: bool = True, **fields) -> Notification:
    """A message row; one per cause, kind and revision (the database holds that). ``fields``
    as for ``build``.

    ``keep=False`` when nothing changes the row later in this transaction (database.insert).
    """
    return database.insert(build(**fields), keep=keep)


def build(
    *,
    patient_id: int | None,
    kind: str,
    cause_type: str,
    cause_id: int | None,
    due_at: datetime,
    now: datetime,
    routine: bool = False,
    revision: int = 0,
    channel: str = "email",
    status: str = Status.PENDING,
    last_error: str | None = None,
    claimed_at: datetime | None = None,
) -> Notification:
    """A new message row, not stored yet."""
    return Notification(
        patient_id=patient_id,
        kind=kind,
        template=TEMPLATES[kind],
        cause_type=cause_type,
        cause_id=cause_id,
        revision=revision,
        channel=channel,
        routine=routine,
        status=status,
        due_at=due_at,
        attempts=0,
        last_error=last_error,
        message_id=new_message_id(),
        claimed_at=claimed_at,
        created_at=now,
        updated_at=now,
    )


def create_and_send(*, now: datetime, **fields) -> Notification:
    """A new message due now, stored already claimed (one INSERT) and handed to the send task
    once this transaction commits."""
    row = create(**fields, due_at=now, now=now, status=Status.SENDING, claimed_at=now)
    outbox.send_after_commit(row.id)
    return row


def send_at_once(row: Notification, now: datetime) -> Notification:
    """Claim a stored row now and hand it to the send task once this transaction commits."""
    row.status = Status.SENDING
    row.claimed_at = now
    db.session.flush()
    outbox.send_after_commit(row.id)
    return row


def _request_has(request, kind: str) -> bool:
    return (
        db.session.scalar(
            select(Notification.id).where(
                Notification.cause_type == REQUEST,
                Notification.cause_id == request.id,
                Notification.kind == kind,
            )
        )
        is not None
    )


def request_received(request, *, now: datetime) -> Notification | None:
    """The acknowledgement of a saved partial request now completed, unless it has one: a row
    in the intake's transaction, sent by the next dispatcher pass, so a broker outage at that
    moment loses nothing. A new request stores its row with itself (``intake.store``)."""
    patient = request.patient
    if patient is None or not wants_acknowledgement(patient):
        return None
    if _request_has(request, "intake_acknowledgement"):
        return None
    row = acknowledgement(now=now)
    row.patient_id = patient.id
    row.cause_id = request.id
    return database.insert(row, keep=False)  # the next dispatcher pass sends it


def wants_acknowledgement(patient) -> bool:
    """The patient's record (not the intake's answers) has an address and consents to email.
    ``intake.store`` asks the same in SQL."""
    return bool(patient.email and patient.consent_email)


def acknowledgement(*, now: datetime) -> Notification:
    """A new intake's acknowledgement row, not stored yet: its patient and request are filled
    in when it is."""
    return build(
        patient_id=None,
        kind="intake_acknowledgement",
        cause_type=REQUEST,
        cause_id=None,
        due_at=now,
        now=now,
    )


def request_flagged(request, *, now: datetime, new: bool = False) -> Notification | None:
    """Staff's alert about an emergency or urgent intake, in the request's transaction.

    Sent at once after the commit, to STAFF_ALERT_EMAIL; the dispatcher sends it if the broker
    lost it. One per request and level, whatever follows (the partial request saved at the
    red-flag answer, the patient going back, the full submission); triage never drops, so only
    an urgent request becoming an emergency alerts again. The row has no patient: the message
    is not theirs and is not in their message list; its cause leads staff to the request.
    ``new``: the request was created in this transaction, so it cannot have one yet (the check
    for an earlier alert is needed only when a saved request is completed or changed).
    """
    kind = INTAKE_ALERT_KINDS.get(request.triage)
    if kind is None:
        return None
    if not new and _request_has(request, kind):
        return None
    return create_and_send(
        patient_id=None,
        kind=kind,
        cause_type=REQUEST,
        cause_id=request.id,
        now=now,
    )


def _reminder_due(appointment: Appointment, hours_before: float) -> datetime:
    config = current_app.config
    due = appointment.start_at - timedelta(hours=hours_before)
    return schedules.within_send_hours(
        due, http.clinic_tz(), config["NOTIFY_SEND_HOURS"], latest=appointment.start_at
    )


def _reminders_locked(appointment: Appointment, kinds: list[str]) -> list[Notification]:
    """The appointment's reminder rows, locked in id order, then sorted by kind and revision.

    A send holds its row's lock until it has committed "sent" (sending.deliver), so this waits
    for a reminder being sent and then reads what it left. Only reminders: waiting for the
    confirmation or an update being sent would hold the appointment for nothing.
    """
    locked = db.session.scalars(
        select(Notification)
        .where(
            Notification.cause_type == APPOINTMENT,
            Notification.cause_id == appointment.id,
            Notification.kind.in_(kinds),
        )
        .order_by(Notification.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return sorted(locked, key=lambda row: (row.kind, row.revision))


def appointment_booked(appointment: Appointment, *, now: datetime) -> list[Notification]:
    """The confirmation (at once, with an .ics) and the reminders of the type's schedule."""
    rows = []
    for step in schedule().steps(appointment.appointment_type.code):
        if step.at_booking:
            row = _news(appointment, step.kind, now=now, revision=0)
            rows.append(row)
        elif step.hours_before is not None:
            rows.append(_reminder(appointment, step, now=now, revision=0))
    return rows


def _news(appointment: Appointment, kind: str, *, now: datetime, revision: int) -> Notification:
    """The confirmation or the update, sent at once; kept as skipped, unsent, for a visit that
    has begun already (a walk-in staff enter after the fact: nothing to confirm)."""
    fields = dict(
        patient_id=appointment.patient_id,
        kind=kind,
        cause_type=APPOINTMENT,
        cause_id=appointment.id,
        revision=revision,
    )
    if appointment.start_at <= now:
        return create(
            **fields,
            due_at=now,
            now=now,
            status=Status.SKIPPED,
            last_error="the visit had begun",
            keep=False,
        )
    return create_and_send(**fields, now=now)


def _reminder(appointment: Appointment, step, *, now: datetime, revision: int) -> Notification:
    due = _reminder_due(appointment, step.hours_before)
    too_late = due <= now
    return create(
        patient_id=appointment.patient_id,
        kind=step.kind,
        cause_type=APPOINTMENT,
        cause_id=appointment.id,
        due_at=due,
        now=now,
        routine=True,
        revision=revision,
        status=Status.SKIPPED if too_late else Status.PENDING,
        last_error="booked too close to the appointment" if too_late else None,
    )


def appointment_rescheduled(appointment: Appointment, *, now: datetime) -> list[Notification]:
    """Re-time the reminders still to come, and send the update (same UID, next SEQUENCE)."""
    rows = []
    steps = [
        s for s in schedule().steps(appointment.appointment_type.code) if s.hours_before is not None
    ]
    latest: dict[str, Notification] = {}
    for row in _reminders_locked(appointment, [step.kind for step in steps]):
        latest[row.kind] = row  # ordered by revision: the last one wins
    for step in steps:
        row = latest.get(step.kind)
        if row is not None and row.status in (Status.PENDING, Status.SKIPPED, Status.SENDING):
            # Not sent yet. A row still "sending" once its lock is ours was claimed but its
            # send has not started: take the claim back, so the queued task finds nothing to do
            # and the dispatcher sends the reminder at the new time.
            due = _reminder_due(appointment, step.hours_before)
            row.due_at = due
            row.status = Status.PENDING if due > now else Status.SKIPPED
            row.claimed_at = None
            row.last_error = None if due > now else "moved too close to the appointment"
            row.updated_at = now
        else:
            # Already sent (or failed) for the old time: the new time gets its own reminder.
            row = _reminder(appointment, step, now=now, revision=appointment.sequence)
        rows.append(row)
    # An earlier move's update not sent yet (the worker behind) would say the same as this one,
    # which is filled in when sent: one message for the lot. (A send in progress holds its row's
    # lock, so this waits for it and then leaves the sent message alone.)
    cancel_open(
        APPOINTMENT,
        appointment.id,
        now=now,
        reason="a later move's update says it",
        kinds=("update",),
    )
    rows.append(_news(appointment, "update", now=now, revision=appointment.sequence))
    return rows


def cancel_open(
    cause_type: str,
    cause_id: int,
    *,
    now: datetime,
    reason: str,
    kinds: tuple[str, ...] | None = None,
) -> int:
    """Cancel every message of this cause (of these kinds) not yet sent. A send in progress
    holds its row's lock, so this waits for it and then leaves the sent message alone."""
    query = update(Notification).where(
        Notification.cause_type == cause_type,
        Notification.cause_id == cause_id,
        Notification.status.in_(OPEN_STATUSES),
    )
    if kinds is not None:
        query = query.where(Notification.kind.in_(kinds))
    result = db.session.execute(
        query.values(status=Status.CANCELLED, last_error=reason, updated_at=now).execution_options(
            synchronize_session="fetch"
        )
    )
    return result.rowcount


def appointment_cancelled(appointment: Appointment, *, now: datetime) -> Notification:
    """Cancel what was still to go, and tell the patient (METHOD:CANCEL)."""
    cancel_open(APPOINTMENT, appointment.id, now=now, reason="appointment cancelled")
    return create_and_send(
        patient_id=appointment.patient_id,
        kind="cancellation",
        cause_type=APPOINTMENT,
        cause_id=appointment.id,
        now=now,
    )


def appointment_status_changed(
    appointment: Appointment, old: str, *, now: datetime
) -> Notification | None:
    """No-show: the "we missed you" message; any other end of the road: nothing more to send.
    A no-show undone (back to booked) takes that message and the call-back task back."""
    status = appointment.status
    if status == AppointmentStatus.CANCELLED:
        return appointment_cancelled(appointment, now=now)
    if old == AppointmentStatus.NOSHOW and status == AppointmentStatus.BOOKED:
        _no_show_undone(appointment, now=now)
        return None
    if status in (AppointmentStatus.BOOKED, AppointmentStatus.PENDING):
        return None
    if status in (AppointmentStatus.ARRIVED, AppointmentStatus.CHECKED_IN):
        return None
    cancel_open(APPOINTMENT, appointment.id, now=now, reason=f"appointment {status}")
    if status != AppointmentStatus.NOSHOW:
        return None
    db.session.add(
        StaffTask(
            patient_id=appointment.patient_id,
            kind="no_show",
            title="Missed appointment: call the patient to book a new time",
            cause_type=APPOINTMENT,
            cause_id=appointment.id,
            due_at=now,
            created_at=now,
        )
    )
    for step in schedule().steps(appointment.appointment_type.code):
        if step.hours_after_no_show is not None:
            earlier = db.session.execute(
                select(Notification.status, Notification.revision).where(
                    Notification.cause_type == APPOINTMENT,
                    Notification.cause_id == appointment.id,
                    Notification.kind == step.kind,
                )
            ).all()
            if any(row.status != Status.CANCELLED for row in earlier):
                return None  # one "we missed you" per appointment; an undone one is cancelled
            due = schedules.within_send_hours(
                now + timedelta(hours=step.hours_after_no_show),
                http.clinic_tz(),
                current_app.config["NOTIFY_SEND_HOURS"],
            )
            return create(
                patient_id=appointment.patient_id,
                kind=step.kind,
                cause_type=APPOINTMENT,
                cause_id=appointment.id,
                due_at=due,
                now=now,
                routine=True,
                revision=max((row.revision for row in earlier), default=-1) + 1,
            )
    return None


def _no_show_undone(appointment: Appointment, *, now: datetime) -> None:
    """Staff marked a no-show by mistake: the "we missed you" message not yet sent and the
    call-back task go, and reminders the no-show cancelled come back if still ahead."""
    steps = schedule().steps(appointment.appointment_type.code)
    no_show_kinds = [s.kind for s in steps if s.hours_after_no_show is not None]
    cancel_open(
        APPOINTMENT, appointment.id, now=now, reason="no-show undone", kinds=tuple(no_show_kinds)
    )
    db.session.execute(
        update(StaffTask)
        .where(
            StaffTask.cause_type == APPOINTMENT,
            StaffTask.cause_id == appointment.id,
            StaffTask.kind == "no_show",
            StaffTask.done_at.is_(None),
        )
        .values(done_at=now, note="The no-show was undone: the appointment is booked again.")
        .execution_options(synchronize_session="fetch")
    )
    reminders = [s for s in steps if s.hours_before is not None]
    latest: dict[str, Notification] = {}
    for row in _reminders_locked(appointment, [step.kind for step in reminders]):
        latest[row.kind] = row
    for step in reminders:
        row = latest.get(step.kind)
        if row is None or row.status != Status.CANCELLED:
            continue
        if _reminder_due(appointment, step.hours_before) > now:
            _reminder(appointment, step, now=now, revision=row.revision + 1)


RESENDABLE = (Status.SENT, Status.FAILED, Status.SKIPPED)  # not cancelled: its cause is gone


def resend(row: Notification, *, actor: StaffUser, now: datetime, client=None) -> Notification:
    """Send the same message (same Message-ID) again, now."""
    if row.status not in RESENDABLE:
        raise DomainError("This message is still on its way.")
    if row.cause_type == APPOINTMENT and row.kind not in ("cancellation",):
        appointment = db.session.get(Appointment, row.cause_id)
        if appointment is not None and appointment.status == AppointmentStatus.CANCELLED:
            raise DomainError("The appointment is cancelled; only the cancellation can be resent.")
    if row.cause_type == "timepoint":
        held = timepoints.held_back(row, now)
        if held is not None:  # it would only be skipped: say why now, nothing is queued
            raise DomainError(f"This check-in message cannot go any more: {held[1]}.")
    old = row.status
    row.due_at = now
    row.attempts = 0
    row.last_error = None
    row.updated_at = now
    send_at_once(row, now)
    audit.record_about(
        "update",
        row,
        actor=actor,
        changed_fields=["status"],
        reason=f"resend ({old}) {row.kind}",
        client=client,
        now=now,
    )
    return row


def for_patient(patient_id: int) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.patient_id == patient_id)
            .order_by(Notification.due_at, Notification.id)
        )
    )


def with_status(statuses: Iterable[str], *, limit: int = 200) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.status.in_(list(statuses)))
            .order_by(Notification.updated_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )
