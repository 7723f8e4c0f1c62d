"""Waitlist services: who waits for what, the slots cancellations free up, booking one.

They flush and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from clinic import audit
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.models import Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling.models import (
    Appointment,
    AppointmentStatus,
    Provider,
    WaitlistEntry,
)


class SlotPassed(services.SlotUnavailable):
    """The freed slot is in the past now, or its provider stopped taking appointments."""


FREED_WITHIN = timedelta(days=14)  # cancellations this recent are offered to the waitlist
MAX_FREED_SLOTS = 200


@dataclass(frozen=True)
class FreedSlot:
    appointment: Appointment  # the cancelled one: its provider, type, place and time
    matches: list[WaitlistEntry]


def _still_free(appointment: Appointment) -> bool:
    """Whether staff booking would take this time now: the booking's own check
    (services.staff_slot_location: no active appointment or time off over it, the provider
    works then, the type's per-day cap not reached that day), so an offered slot can be booked."""
    try:
        services.staff_slot_location(
            appointment.provider, appointment.appointment_type, appointment.start_at
        )
    except services.SlotUnavailable:
        return False
    return True


def freed_slots(now: datetime) -> list[FreedSlot]:
    """Future times of recent cancellations that nobody has taken since, with who waits."""
    cancelled = db.session.scalars(
        select(Appointment)
        .options(
            joinedload(Appointment.provider),
            joinedload(Appointment.appointment_type),
            joinedload(Appointment.location),
        )
        .where(
            Appointment.status == AppointmentStatus.CANCELLED,
            Appointment.cancelled_at >= now - FREED_WITHIN,
            Appointment.start_at > now,
        )
        .order_by(Appointment.start_at, Appointment.provider_id, Appointment.id)
        .limit(MAX_FREED_SLOTS)
    ).all()
    seen: set[tuple] = set()
    found = []
    for appointment in cancelled:
        key = (appointment.provider_id, appointment.appointment_type_id, appointment.start_at)
        if key in seen:  # cancelled, rebooked and cancelled again: one slot
            continue
        seen.add(key)
        if not appointment.provider.active or not _still_free(appointment):
            continue
        found.append(FreedSlot(appointment, list(services.waitlist_matches(appointment))))
    return found


def add_entry(
    patient_id: int,
    appointment_type_id: int,
    provider_id: int | None,
    note: str,
    *,
    actor: StaffUser,
    now: datetime,
    client: dict | None = None,
) -> WaitlistEntry:
    """Put a patient on the waitlist for a kind of visit (with a provider, or any)."""
    # One add per patient at a time (a double-submitted form): the second waits here, then
    # finds the first's entry. SQLite's IMMEDIATE transactions serialize this already.
    db.session.execute(
        select(Patient.id).where(Patient.id == patient_id).with_for_update(key_share=True)
    )
    duplicate = db.session.scalar(
        select(WaitlistEntry.id).where(
            WaitlistEntry.status == "waiting",
            WaitlistEntry.patient_id == patient_id,
            WaitlistEntry.appointment_type_id == appointment_type_id,
            WaitlistEntry.provider_id.is_(None)
            if provider_id is None
            else WaitlistEntry.provider_id == provider_id,
        )
    )
    if duplicate is not None:
        raise ValidationFailed({"patient_id": ["This patient is already waiting for this visit."]})
    entry = WaitlistEntry(
        patient_id=patient_id,
        appointment_type_id=appointment_type_id,
        provider_id=provider_id,
        note=note,
        status="waiting",
        created_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    audit.record_about(
        "create",
        entry,
        actor=actor,
        changed_fields=["appointment_type_id", "provider_id", "note"],
        client=client,
        now=now,
    )
    return entry


def remove_entry(
    entry: WaitlistEntry, *, actor: StaffUser, now: datetime, client: dict | None = None
) -> None:
    entry.status = "removed"
    audit.record_about(
        "update",
        entry,
        actor=actor,
        changed_fields=["status"],
        reason="waiting -> removed",
        client=client,
        now=now,
    )
    db.session.flush()


def book_entry(
    entry: WaitlistEntry,
    provider: Provider,
    start: datetime,
    *,
    actor: StaffUser,
    now: datetime,
    client: dict | None = None,
) -> Appointment:
    """Book a freed slot for a waiting patient in one step; SlotUnavailable if it is gone."""
    if entry.provider_id not in (None, provider.id):
        raise DomainError("This patient waits for another provider.")
    if start <= now or not provider.active:
        raise SlotPassed("That slot is no longer bookable.")
    appointment = services.book_appointment(
        entry.patient,
        entry.appointment_type,
        provider,
        start,
        now=now,
        actor=actor,
        source="staff",
        client=client,
    )
    entry.status = "booked"
    entry.appointment_id = appointment.id
    audit.record_about(
        "update",
        entry,
        actor=actor,
        changed_fields=["status", "appointment_id"],
        reason=f"waiting -> booked: appointment {appointment.id}",
        client=client,
        now=now,
    )
    db.session.flush()
    return appointment
