"""Scheduling models: where and when providers work, appointment types, appointments.

No double booking is enforced by the database: on PostgreSQL an exclusion constraint over the
provider and the occupied time range (buffers included) of active appointments; on SQLite a
trigger that refuses an overlapping row inside SQLite's single-writer transaction. Both are in
the migration.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinic.extensions import db
from clinic.models import Patient, StaffUser, UTCDateTime, utcnow


class AppointmentStatus(enum.StrEnum):
    """FHIR Appointment.status."""

    PROPOSED = "proposed"
    PENDING = "pending"
    BOOKED = "booked"
    ARRIVED = "arrived"
    CHECKED_IN = "checked-in"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    NOSHOW = "noshow"
    ENTERED_IN_ERROR = "entered-in-error"
    WAITLIST = "waitlist"


S = AppointmentStatus
# The one table of allowed status changes.
TRANSITIONS: dict[str, set[str]] = {
    S.PROPOSED: {S.PENDING, S.BOOKED, S.CANCELLED, S.ENTERED_IN_ERROR},
    S.PENDING: {S.BOOKED, S.CANCELLED, S.ENTERED_IN_ERROR},
    S.BOOKED: {S.ARRIVED, S.CHECKED_IN, S.CANCELLED, S.NOSHOW, S.ENTERED_IN_ERROR},
    S.ARRIVED: {S.CHECKED_IN, S.FULFILLED, S.CANCELLED, S.ENTERED_IN_ERROR},
    S.CHECKED_IN: {S.FULFILLED, S.ENTERED_IN_ERROR},
    S.FULFILLED: {S.ENTERED_IN_ERROR},
    S.NOSHOW: {S.BOOKED, S.ENTERED_IN_ERROR},
    S.WAITLIST: {S.BOOKED, S.CANCELLED},
    S.CANCELLED: set(),
    S.ENTERED_IN_ERROR: set(),
}
# Statuses that hold the provider's time (the double-booking guard covers these only).
ACTIVE_STATUSES = (S.PENDING, S.BOOKED, S.ARRIVED, S.CHECKED_IN, S.FULFILLED)
ACTIVE_SQL = "status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')"


class Location(db.Model):
    __tablename__ = "location"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address_line1: Mapped[str] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    zip: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str] = mapped_column(String(30))
    timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def address(self) -> str:
        line2 = f", {self.address_line2}" if self.address_line2 else ""
        return f"{self.address_line1}{line2}, {self.city}, {self.state} {self.zip}"


class Provider(db.Model):
    __tablename__ = "provider"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(60), default="")
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    feed_token: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    hours: Mapped[list[ProviderHours]] = relationship(
        back_populates="provider", order_by="(ProviderHours.weekday, ProviderHours.start_time)"
    )


class AppointmentType(db.Model):
    """Durations, buffers and booking rules per kind of visit (defaults seeded as data)."""

    __tablename__ = "appointment_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    step_minutes: Mapped[int] = mapped_column(Integer, default=15)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    horizon_days: Mapped[int] = mapped_column(Integer, default=90)
    daily_cap: Mapped[int | None] = mapped_column(Integer)  # per provider per local day
    patient_bookable: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ProviderHours(db.Model):
    """Weekly working hours; a break is the gap between two rows of the same day."""

    __tablename__ = "provider_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)

    provider: Mapped[Provider] = relationship(back_populates="hours")
    location: Mapped[Location] = relationship()


class ScheduleException(db.Model):
    """One date's hours for a provider, replacing the weekly ones; no times = not working."""

    __tablename__ = "schedule_exception"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"))
    day: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time | None] = mapped_column(Time)
    end_time: Mapped[time | None] = mapped_column(Time)
    reason: Mapped[str] = mapped_column(String(200), default="")


class TimeOff(db.Model):
    __tablename__ = "time_off"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")


class ClinicClosure(db.Model):
    __tablename__ = "clinic_closure"
    __table_args__ = (UniqueConstraint("location_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200), default="")


class Appointment(db.Model):
    """A booking. Cancelling keeps the row; the occupied span includes the type's buffers."""

    __tablename__ = "appointment"
    __table_args__ = (
        Index("ix_appointment_provider_start", "provider_id", "start_at"),
        Index("ix_appointment_start", "start_at"),
        # One live consultation per intake request: a booking link books once.
        Index(
            "uq_appointment_request_active",
            "consultation_request_id",
            unique=True,
            postgresql_where=text(ACTIVE_SQL),
            sqlite_where=text(ACTIVE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_type.id"))
    consultation_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_request.id")
    )
    status: Mapped[str] = mapped_column(String(20), default=AppointmentStatus.BOOKED)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    occupied_start: Mapped[datetime] = mapped_column(UTCDateTime)
    occupied_end: Mapped[datetime] = mapped_column(UTCDateTime)
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every reschedule
    source: Mapped[str] = mapped_column(String(12))  # patient, staff, api
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship()
    provider: Mapped[Provider] = relationship()
    location: Mapped[Location] = relationship()
    appointment_type: Mapped[AppointmentType] = relationship()
    cancelled_by: Mapped[StaffUser | None] = relationship(foreign_keys=[cancelled_by_id])


class WaitlistEntry(db.Model):
    __tablename__ = "waitlist_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_type.id"))
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("provider.id"))
    status: Mapped[str] = mapped_column(String(12), default="waiting")  # waiting, booked, removed
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointment.id"))

    patient: Mapped[Patient] = relationship()
    appointment_type: Mapped[AppointmentType] = relationship()
    provider: Mapped[Provider | None] = relationship()


class FreedBy(enum.StrEnum):
    """What gave a provider's time up: cancelling, moving away, or entering it in error."""

    CANCELLED = "cancelled"
    MOVED = "moved"
    ENTERED_IN_ERROR = "entered-in-error"


class FreedTime(db.Model):
    """A future time an appointment gave up, kept for the waitlist to offer.

    A moved appointment keeps its row (old links lead to it) and holds only its new time, so
    the time it left is written down here as it moves; cancelled and entered-in-error ones are
    written down too, so the waitlist reads one table. No-shows free nothing: their time has
    come. Whether the time is still free is decided when it is offered, not here.
    """

    __tablename__ = "freed_time"
    __table_args__ = (Index("ix_freed_time_provider_start", "provider_id", "start_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointment.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    appointment_type_id: Mapped[int] = mapped_column(ForeignKey("appointment_type.id"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    occupied_start: Mapped[datetime] = mapped_column(UTCDateTime)
    occupied_end: Mapped[datetime] = mapped_column(UTCDateTime)
    freed_by: Mapped[str] = mapped_column(String(20))  # FreedBy
    freed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    appointment: Mapped[Appointment] = relationship()
    provider: Mapped[Provider] = relationship()
    appointment_type: Mapped[AppointmentType] = relationship()


class IdempotencyRecord(db.Model):
    """The first answer to a POST with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("key", "endpoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    # indexed for the purge of expired records (idempotency_records.RETENTION)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
