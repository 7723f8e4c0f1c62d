"""Procedures, their follow-up timepoints, check-in answers, staff tasks and pauses."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinic.extensions import db
from clinic.models import Patient, StaffUser, UTCDateTime, utcnow
from clinic.scheduling.models import Provider


class TimepointStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    COMPLETED = "completed"
    MISSED = "missed"
    CANCELLED = "cancelled"


class Procedure(db.Model):
    """A procedure performed on a patient (date of service is T0 of the follow-up plan)."""

    __tablename__ = "procedure"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    performed_on: Mapped[date] = mapped_column(Date)
    plan_version: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="active")  # active, cancelled
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship()
    provider: Mapped[Provider] = relationship()
    timepoints: Mapped[list[Timepoint]] = relationship(
        back_populates="procedure", order_by="Timepoint.due_on"
    )


class Timepoint(db.Model):
    """One follow-up point of a plan (FU-D1, FU-W6...), with its window."""

    __tablename__ = "followup_timepoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedure.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    code: Mapped[str] = mapped_column(String(12))
    label: Mapped[str] = mapped_column(String(60))
    due_on: Mapped[date] = mapped_column(Date)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    wound_questions: Mapped[bool] = mapped_column(Boolean, default=False)
    # The ODI (domain spec 2.1) from 6 weeks on: day 1 and day 10 ask about the wound instead.
    odi_questions: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    status: Mapped[str] = mapped_column(String(12), default=TimepointStatus.SCHEDULED)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    procedure: Mapped[Procedure] = relationship(back_populates="timepoints")
    patient: Mapped[Patient] = relationship()


class CheckIn(db.Model):
    """A patient's answers to one check-in, with scores and the versions that made them."""

    __tablename__ = "checkin"

    id: Mapped[int] = mapped_column(primary_key=True)
    timepoint_id: Mapped[int | None] = mapped_column(ForeignKey("followup_timepoint.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    form_version: Mapped[str] = mapped_column(String(40))
    scoring_version: Mapped[str] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(10), default="web")
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    red_flags: Mapped[list] = mapped_column(JSON, default=list)
    triage: Mapped[str] = mapped_column(String(12), default="routine")
    scores: Mapped[dict] = mapped_column(JSON, default=dict)
    responders: Mapped[dict] = mapped_column(JSON, default=dict)

    timepoint: Mapped[Timepoint | None] = relationship()


class StaffTask(db.Model):
    """Work for a person: a call to make, a non-responder to chase, a red flag to look at."""

    __tablename__ = "staff_task"
    __table_args__ = (
        Index(
            "ix_staff_task_open",
            "due_at",
            postgresql_where=text("done_at IS NULL"),
            sqlite_where=text("done_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(200))
    cause_type: Mapped[str | None] = mapped_column(String(30))
    cause_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    note: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship()
    done_by: Mapped[StaffUser | None] = relationship()


class AutomationPause(db.Model):
    """Routine messages to this patient wait until staff acknowledge the red flag behind it."""

    __tablename__ = "automation_pause"
    __table_args__ = (
        Index(
            "uq_automation_pause_open",
            "patient_id",
            unique=True,
            postgresql_where=text("acknowledged_at IS NULL"),
            sqlite_where=text("acknowledged_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkin.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    note: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship()
    acknowledged_by: Mapped[StaffUser | None] = relationship()
