"""Whether a follow-up message may still go: asked by the send task and by a staff resend.

A check-in email is held back for many reasons that arise after it was planned (the patient
answered, the window closed, staff marked it missed, a later reminder went). The send task
skips it then; a staff resend is refused with the same reason instead of queued to be skipped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from clinic import http
from clinic.extensions import db
from clinic.followup.models import Procedure, Timepoint, TimepointStatus
from clinic.notifications.models import Notification, Status

# A timepoint's check-in emails, in the order they go: the invitation, then its re-sends.
CHECKIN_KINDS = ("checkin", "checkin_resend_1", "checkin_resend_2")


def held_back(row: Notification, now: datetime) -> tuple[str, str] | None:
    """(status, reason) when this timepoint's message must not go now, else None."""
    timepoint = db.session.get(Timepoint, row.cause_id)
    if timepoint is None:
        return Status.CANCELLED, "follow-up gone"
    procedure = db.session.get(Procedure, timepoint.procedure_id)
    if procedure.status != "active" or timepoint.status == TimepointStatus.CANCELLED:
        return Status.CANCELLED, "follow-up cancelled"
    if timepoint.status == TimepointStatus.COMPLETED:
        return Status.CANCELLED, "check-in already answered"
    if row.kind in CHECKIN_KINDS:
        # Held messages (a pause, a stalled dispatcher) may come due long after their time.
        if timepoint.status == TimepointStatus.MISSED:
            return Status.SKIPPED, "check-in missed: staff follow up"
        if now.astimezone(http.clinic_tz()).date() > timepoint.window_end:
            return Status.SKIPPED, "check-in window closed"
        if _superseded(row, now):
            return Status.SKIPPED, "a later check-in message is due"
    return None


def _superseded(row: Notification, now: datetime) -> bool:
    """A later message of the same check-in is due (or went) too: only the latest goes, so
    the patient gets one contact at a time. Decided by kind, not by which send runs first."""
    later = CHECKIN_KINDS[CHECKIN_KINDS.index(row.kind) + 1 :]
    if not later:
        return False
    found = db.session.scalar(
        select(Notification.id)
        .where(
            Notification.cause_type == row.cause_type,
            Notification.cause_id == row.cause_id,
            Notification.kind.in_(later),
            Notification.due_at <= now,
            Notification.status.in_((Status.PENDING, Status.SENDING, Status.SENT)),
        )
        .limit(1)
    )
    return found is not None
