"""Waitlist services: who waits for what, the slots that free up, the earliest open time
for each wish, booking one.

They flush and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased, contains_eager, joinedload

from clinic import audit
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.models import Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    AppointmentType,
    FreedTime,
    Location,
    Provider,
    TimeOff,
    WaitlistEntry,
)


class SlotPassed(services.SlotUnavailable):
    """The freed slot is in the past now, or its provider stopped taking appointments."""


MOVABLE = (AppointmentStatus.BOOKED, AppointmentStatus.PENDING)  # as services.reschedule allows
FREED_WITHIN = timedelta(days=14)  # times given up this recently are offered to the waitlist
MAX_FREED_SLOTS = 200  # shown at most; also the size of each page read
OPEN_SEARCH_DAYS = 365  # the earliest open time is looked for this far ahead at most
FIRST_WINDOW = timedelta(days=14)  # ... in windows of 14 days, then 28, 56 and so on


@dataclass(frozen=True)
class FreedSlot:
    freed: FreedTime  # the provider, type and time given up; by what and when
    location: Location  # where booking it puts the appointment now
    matches: list[WaitlistEntry]  # who could take it (see matches())


def _still_free(freed: FreedTime) -> int | None:
    """Where staff booking would put this freed time, or None if it would refuse it: the
    same check as the booking (another appointment or time off over it, the provider's hours,
    schedule exceptions and clinic closures, the type's per-day cap)."""
    try:
        return services.staff_slot_location(freed.provider, freed.appointment_type, freed.start_at)
    except services.SlotUnavailable:
        return None


def _candidates(now: datetime):
    """Recently freed future times, by start, that no later record of the same time replaces
    and that SQL can already tell are free (active provider; no active appointment and no
    time off over the span recorded): the cheap part of _still_free, so that the stale rows
    most often found (a time booked again) cost no queries of their own."""
    later = aliased(FreedTime)
    replaced = exists().where(
        later.provider_id == FreedTime.provider_id,
        later.appointment_type_id == FreedTime.appointment_type_id,
        later.start_at == FreedTime.start_at,
        (later.freed_at > FreedTime.freed_at)
        | ((later.freed_at == FreedTime.freed_at) & (later.id > FreedTime.id)),
    )
    taken = exists().where(
        Appointment.provider_id == FreedTime.provider_id,
        Appointment.status.in_(ACTIVE_STATUSES),
        Appointment.occupied_start < FreedTime.occupied_end,
        Appointment.occupied_end > FreedTime.occupied_start,
    )
    time_off = exists().where(
        TimeOff.provider_id == FreedTime.provider_id,
        TimeOff.start_at < FreedTime.occupied_end,
        TimeOff.end_at > FreedTime.occupied_start,
    )
    return (
        select(FreedTime)
        .join(FreedTime.provider)
        .options(
            contains_eager(FreedTime.provider),
            joinedload(FreedTime.appointment_type),
            joinedload(FreedTime.appointment),
        )
        .where(
            FreedTime.freed_at >= now - FREED_WITHIN,
            FreedTime.start_at > now,
            Provider.active.is_(True),
            ~replaced,
            ~taken,
            ~time_off,
        )
        .order_by(FreedTime.start_at, FreedTime.provider_id, FreedTime.id)
    )


def freed_slots(
    now: datetime, waiting: list[WaitlistEntry], booked: dict[int, Appointment]
) -> list[FreedSlot]:
    """Future times given up lately (cancelled, moved away, entered in error) that staff
    could book now, earliest first, with who of ``waiting`` (see waiting_entries; ``booked``:
    see booked_already) could take them; at most MAX_FREED_SLOTS."""
    query = _candidates(now)
    found: list[FreedSlot] = []
    after = None  # read in pages: the limit counts slots shown, not rows read
    while len(found) < MAX_FREED_SLOTS:
        page = query
        if after is not None:
            page = page.where(_past(after))
        rows = db.session.scalars(page.limit(MAX_FREED_SLOTS)).all()
        for freed in rows:
            location_id = _still_free(freed)
            if location_id is not None:
                location = db.session.get(Location, location_id)
                found.append(FreedSlot(freed, location, matches(freed, waiting, booked)))
                if len(found) == MAX_FREED_SLOTS:
                    break
        if len(rows) < MAX_FREED_SLOTS:
            break
        after = rows[-1]
    return found


def waiting_entries() -> list[WaitlistEntry]:
    """Everyone on the waitlist, longest waiting first, with their patients, kinds of visit
    and providers."""
    return db.session.scalars(
        select(WaitlistEntry)
        .options(
            joinedload(WaitlistEntry.patient),
            joinedload(WaitlistEntry.appointment_type),
            joinedload(WaitlistEntry.provider),
        )
        .where(WaitlistEntry.status == "waiting")
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    ).all()


def matches(
    freed: FreedTime, waiting: list[WaitlistEntry], booked: dict[int, Appointment]
) -> list[WaitlistEntry]:
    """Of ``waiting``, the patients waiting for a visit this freed time can hold, in their
    order: the provider's (or any provider's), for the same kind of visit or for another, still
    booked, that fits in it (see _holds); never the patient who gave it up, nor one whose visit
    of that kind (``booked``, see booked_already) is already at that time or earlier."""
    holds = {freed.appointment_type_id: True}  # _still_free checked the freed time's own type
    found = []
    for entry in waiting:
        if entry.patient_id == freed.appointment.patient_id or entry.provider_id not in (
            None,
            freed.provider_id,
        ):
            continue
        if entry.id in booked and booked[entry.id].start_at <= freed.start_at:
            continue
        if entry.appointment_type_id not in holds:
            holds[entry.appointment_type_id] = entry.appointment_type.active and _holds(
                freed, entry.appointment_type
            )
        if holds[entry.appointment_type_id]:
            found.append(entry)
    return found


def _holds(freed: FreedTime, appointment_type: AppointmentType) -> bool:
    """Can a visit of another kind take this freed time: starting when it started, the visit
    and its buffers within the time given up (a shorter visit fits in a longer one's time; a
    longer one would need time nobody gave up), and staff booking would take it there (the
    type's per-day cap)."""
    rules = services.rules_for(appointment_type)
    start = freed.start_at
    if (
        start - rules.buffer_before < freed.occupied_start
        or start + rules.duration + rules.buffer_after > freed.occupied_end
    ):
        return False
    try:
        services.staff_slot_location(freed.provider, appointment_type, start)
    except services.SlotUnavailable:
        return False
    return True


def booked_already(entries: Sequence[WaitlistEntry], now: datetime) -> dict[int, Appointment]:
    """By entry id: the patient's next appointment of the kind of visit waited for, if one is
    booked ahead (a patient waiting for an earlier time). Booking the entry moves it, so the
    patient never holds two, and only earlier times are offered."""
    if not entries:
        return {}
    upcoming = db.session.scalars(
        select(Appointment)
        .options(joinedload(Appointment.provider))
        .where(
            Appointment.patient_id.in_({e.patient_id for e in entries}),
            Appointment.status.in_(MOVABLE),
            Appointment.start_at > now,
        )
        .order_by(Appointment.start_at, Appointment.id)
    )
    first: dict[tuple[int, int], Appointment] = {}
    for appointment in upcoming:
        first.setdefault((appointment.patient_id, appointment.appointment_type_id), appointment)
    return {
        e.id: first[(e.patient_id, e.appointment_type_id)]
        for e in entries
        if (e.patient_id, e.appointment_type_id) in first
    }


@dataclass(frozen=True)
class OpenTime:
    start: datetime
    provider: Provider
    location: Location


def search_days(appointment_type: AppointmentType) -> int:
    """How many days ahead the earliest open time of this kind of visit is looked for."""
    return min(appointment_type.horizon_days, OPEN_SEARCH_DAYS)


def earliest_open(entries: Sequence[WaitlistEntry], now: datetime) -> dict[int, OpenTime | None]:
    """By entry id: the earliest time patients could book now for the entry's kind of visit,
    with its provider (or any), within the type's horizon; None if there is none. However the
    time came free (a cancellation, hours extended, time off taken back), it shows here.

    Each kind of visit is searched once per provider: a wish for any provider takes the
    earliest of the providers' (as the slot search across providers orders them: by start,
    then provider), and patients waiting for the same thing share it."""
    providers: list[Provider] | None = None  # read at the first wish for any provider
    earliest: dict[tuple[int, int], OpenTime | None] = {}

    def with_provider(appointment_type: AppointmentType, provider: Provider) -> OpenTime | None:
        key = (appointment_type.id, provider.id)
        if key not in earliest:
            earliest[key] = _earliest(appointment_type, provider, now)
        return earliest[key]

    found: dict[int, OpenTime | None] = {}
    for entry in entries:
        kind, provider = entry.appointment_type, entry.provider
        if not kind.active:
            found[entry.id] = None
        elif provider is not None:
            found[entry.id] = with_provider(kind, provider) if provider.active else None
        else:
            providers = services.active_providers() if providers is None else providers
            times = [t for p in providers if (t := with_provider(kind, p)) is not None]
            found[entry.id] = min(times, key=lambda t: (t.start, t.provider.id), default=None)
    return found


def _earliest(
    appointment_type: AppointmentType, provider: Provider, now: datetime
) -> OpenTime | None:
    """The provider's first slot of this type that the slot search offers, searched in windows
    that double in length (a time in the next weeks costs one search; a full calendar a few)."""
    # the horizon is inclusive; search_slots keeps what lies beyond it out
    start, last = now, now + timedelta(days=search_days(appointment_type), minutes=1)
    window = FIRST_WINDOW
    while start < last:
        end = min(start + window, last)
        slots = services.search_slots(appointment_type, start, end, now=now, provider=provider)
        if slots:
            first = slots[0]
            return OpenTime(first.start, provider, db.session.get(Location, first.location_id))
        start, window = end, window * 2
    return None


def _past(last: FreedTime):
    """Rows after ``last`` in the order of _candidates (start, provider, id)."""
    return (FreedTime.start_at > last.start_at) | (
        (FreedTime.start_at == last.start_at)
        & (
            (FreedTime.provider_id > last.provider_id)
            | ((FreedTime.provider_id == last.provider_id) & (FreedTime.id > last.id))
        )
    )


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
) -> tuple[Appointment, datetime | None]:
    """Book a slot for a waiting patient in one step; SlotUnavailable if it is gone. A patient
    with a visit of that kind booked ahead has it moved there instead (only ever earlier), so
    they never hold two. Returns the appointment and, if it was moved, where it started."""
    if entry.provider_id not in (None, provider.id):
        raise DomainError("This patient waits for another provider.")
    if start <= now or not provider.active:
        raise SlotPassed("That slot is no longer bookable.")
    current = booked_already([entry], now).get(entry.id)
    if current is None:
        moved_from = None
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
    else:
        moved_from = current.start_at
        if start >= moved_from:
            raise DomainError("This patient's visit is booked for that time or earlier already.")
        appointment = services.reschedule(
            current, start, now=now, actor=actor, provider=provider, client=client
        )
    entry.status = "booked"
    entry.appointment_id = appointment.id
    how = "booked" if moved_from is None else "moved earlier"
    audit.record_about(
        "update",
        entry,
        actor=actor,
        changed_fields=["status", "appointment_id"],
        reason=f"waiting -> booked: appointment {appointment.id} {how}",
        client=client,
        now=now,
    )
    db.session.flush()
    return appointment, moved_from
