"""Messages as rows: one per cause and kind, with its delivery state."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinic.extensions import db
from clinic.models import Patient, UTCDateTime, utcnow


class Status(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


OPEN_STATUSES = (Status.PENDING, Status.SENDING)

# The staff alert about an intake, by its triage level: one of each per request at most, so an
# urgent request that turns into an emergency (a red flag re-asked later in the form) alerts
# staff again, and nothing else does.
INTAKE_ALERT_KINDS = {"emergency": "intake_alert_emergency", "urgent": "intake_alert_urgent"}
# Messages to the clinic's alert address (STAFF_ALERT_EMAIL), not to a patient: no consent,
# suppression or pause of a patient's applies to them.
STAFF_KINDS = frozenset({"staff_alert", *INTAKE_ALERT_KINDS.values()})


class Notification(db.Model):
    """One message to one patient (or staff address), created with the change that causes it.

    ``cause_type``/``cause_id`` name the row that caused it (an appointment, a follow-up
    timepoint, a consultation request); ``revision`` tells apart the messages one cause sends
    more than once of the same kind (the update after each reschedule). ``message_id`` is fixed
    at creation, so a re-sent message is recognisably the same one.
    """

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("cause_type", "cause_id", "kind", "revision"),
        # The dispatcher reads only due pending rows: this index holds nothing else, so a
        # million future reminders cost it nothing.
        Index(
            "ix_notification_pending_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_notification_sending",
            "claimed_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        Index("ix_notification_patient", "patient_id", "due_at"),
        Index("ix_notification_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    kind: Mapped[str] = mapped_column(String(40))
    template: Mapped[str] = mapped_column(String(60))
    cause_type: Mapped[str] = mapped_column(String(30))
    cause_id: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(10), default="email")  # email, task
    # Routine messages wait for send hours and pause with the patient's automation;
    # essential ones (confirmations, cancellations) go at once and carry no unsubscribe link.
    routine: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default=Status.PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient | None] = relationship()


class Suppression(db.Model):
    """An address that bounced for good (5.1.x) or unsubscribed: no more mail of that sort."""

    __tablename__ = "email_suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)
    reason: Mapped[str] = mapped_column(String(20))  # bounced, unsubscribed
    detail: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DispatcherRun(db.Model):
    """When the dispatcher last ran (one row), so staff see it when beat has stopped."""

    __tablename__ = "dispatcher_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    released: Mapped[int] = mapped_column(Integer, default=0)
