"""Intake models: the stored consultation request, its status history and the step drafts."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinic.extensions import db
from clinic.models import Patient, StaffUser, UTCDateTime, utcnow


class RequestStatus(enum.StrEnum):
    NEW = "new"
    IN_REVIEW = "in_review"
    NEEDS_INFORMATION = "needs_information"
    DECLINED = "declined"
    BOOKED = "booked"


class ConsultationRequest(db.Model):
    """A submitted intake, stored as canonical codes with the versions that shaped it."""

    __tablename__ = "consultation_request"
    __table_args__ = (Index("ix_consultation_request_queue", "triage_rank", "submitted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.NEW)
    triage: Mapped[str] = mapped_column(String(12))
    triage_rank: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(12))  # patient, proxy, staff, api
    completed_by: Mapped[str | None] = mapped_column(String(20))
    proxy_name: Mapped[str | None] = mapped_column(String(100))
    proxy_relationship: Mapped[str | None] = mapped_column(String(100))
    form_version: Mapped[str] = mapped_column(String(40))
    rules_version: Mapped[str] = mapped_column(String(100))
    answers: Mapped[dict] = mapped_column(JSON)
    answered_at: Mapped[dict] = mapped_column(JSON, default=dict)
    red_flags: Mapped[list] = mapped_column(JSON, default=list)
    red_flag_notes: Mapped[list] = mapped_column(JSON, default=list)
    candidacy_signals: Mapped[list] = mapped_column(JSON, default=list)
    clinician_entries: Mapped[dict] = mapped_column(JSON, default=dict)
    consents: Mapped[dict] = mapped_column(JSON, default=dict)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    callback_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    red_flag_ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    red_flag_ack_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))

    patient: Mapped[Patient | None] = relationship()
    status_changes: Mapped[list[StatusChange]] = relationship(
        back_populates="request", order_by="StatusChange.at"
    )

    @property
    def has_red_flag(self) -> bool:
        return bool(self.red_flags)


class StatusChange(db.Model):
    __tablename__ = "request_status_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("consultation_request.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[ConsultationRequest] = relationship(back_populates="status_changes")
    actor: Mapped[StaffUser | None] = relationship()


class IntakeDraft(db.Model):
    """Answers kept server-side between steps; the browser holds only an opaque key."""

    __tablename__ = "intake_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    answered_at: Mapped[dict] = mapped_column(JSON, default=dict)
    step: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("consultation_request.id"))
    emergency_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    urgent_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
