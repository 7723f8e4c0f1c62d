"""Scheduling services: search free slots, book, reschedule, cancel, change status.

They flush and never commit. The database has the last word on double booking: a refused
insert or update comes back as SlotUnavailable, whatever raced with it.
"""

from __future__ import annotations

import functools
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from clinic import audit, database
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.intake import services as intake_services
from clinic.intake.models import ConsultationRequest
from clinic.models import Patient, StaffUser
from clinic.notifications import services as notifications
from clinic.scheduling import availability as av
from clinic.scheduling.models import (
    ACTIVE_STATUSES,
    TRANSITIONS,
    Appointment,
    AppointmentStatus,
    AppointmentType,
    ClinicClosure,
    FreedBy,
    FreedTime,
    Location,
    Provider,
    ProviderHours,
    ScheduleException,
    TimeOff,
)

# PostgreSQL: exclusion_violation, deadlock_detected, serialization_failure.
_CONFLICT_CODES = {"23P01", "40P01", "40001"}


class SlotUnavailable(DomainError):
    """The time is taken (or no longer offered); answer 409."""


class DailyCapReached(SlotUnavailable):
    """The type's per-day cap for this provider is reached that day; answer 409."""


class AlreadyBooked(DomainError):
    """This intake request already has a live appointment: use its manage link."""


@dataclass(frozen=True)
class FoundSlot:
    provider_id: int
    location_id: int
    start: datetime
    end: datetime


def rules_for(appointment_type: AppointmentType) -> av.SlotRules:
    t = appointment_type
    return av.SlotRules(
        duration=timedelta(minutes=t.duration_minutes),
        buffer_before=timedelta(minutes=t.buffer_before_minutes),
        buffer_after=timedelta(minutes=t.buffer_after_minutes),
        step=timedelta(minutes=t.step_minutes),
        min_notice=timedelta(minutes=t.min_notice_minutes),
        horizon=timedelta(days=t.horizon_days),
        daily_cap=t.daily_cap,
    )


# The searches below run on every slot search and booking. Each is built once and bound per
# call: building a SQLAlchemy expression costs more CPU than running it.


@functools.cache
def _occupied_query(excluding: bool):
    # start_at bounds let the (provider_id, start_at) index serve the search (no appointment
    # with its buffers lasts a day); the occupied bounds keep only spans that can matter.
    query = select(Appointment.occupied_start, Appointment.occupied_end).where(
        Appointment.provider_id == bindparam("provider_id"),
        Appointment.start_at >= bindparam("day_before"),
        Appointment.start_at < bindparam("day_after"),
        Appointment.occupied_end > bindparam("start"),
        Appointment.occupied_start < bindparam("end"),
        Appointment.status.in_(ACTIVE_STATUSES),
    )
    return query.where(Appointment.id != bindparam("exclude_id")) if excluding else query


@functools.cache
def _booked_query(excluding: bool):
    query = select(Appointment.start_at).where(
        Appointment.provider_id == bindparam("provider_id"),
        Appointment.appointment_type_id == bindparam("appointment_type_id"),
        Appointment.start_at >= bindparam("day_before"),
        Appointment.start_at < bindparam("day_after"),
        Appointment.status.in_(ACTIVE_STATUSES),
    )
    return query.where(Appointment.id != bindparam("exclude_id")) if excluding else query


@functools.cache
def _time_off_query():
    return select(TimeOff.start_at, TimeOff.end_at).where(
        TimeOff.provider_id == bindparam("provider_id"),
        TimeOff.end_at > bindparam("start"),
        TimeOff.start_at < bindparam("end"),
    )


@functools.cache
def _exceptions_query():
    return select(ScheduleException).where(
        ScheduleException.provider_id == bindparam("provider_id"),
        ScheduleException.day >= bindparam("first"),
        ScheduleException.day <= bindparam("last"),
    )


@functools.cache
def _closures_query():
    return select(ClinicClosure).where(
        ClinicClosure.location_id.in_(bindparam("location_ids", expanding=True)),
        ClinicClosure.day >= bindparam("first"),
        ClinicClosure.day <= bindparam("last"),
    )


def _busy(
    provider_id: int, start: datetime, end: datetime, exclude_id: int | None = None
) -> list[av.Interval]:
    """Occupied spans of the provider's active appointments and time off that meet
    [start, end): pass the reach of the spans being tested (slot starts widened by the
    type's buffers and duration), not only the range of the starts."""
    found = db.session.execute(
        _occupied_query(exclude_id is not None),
        {
            "provider_id": provider_id,
            "day_before": start - timedelta(days=1),
            "day_after": end + timedelta(days=1),
            "start": start,
            "end": end,
            "exclude_id": exclude_id,
        },
    )
    spans = [av.Interval(a, b) for a, b in found]
    time_off = db.session.execute(
        _time_off_query(), {"provider_id": provider_id, "start": start, "end": end}
    )
    spans += [av.Interval(a, b) for a, b in time_off]
    return spans


def _booked_per_day(
    provider_id: int,
    appointment_type_id: int,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    exclude_id: int | None = None,
) -> dict[date, int]:
    found = db.session.execute(
        _booked_query(exclude_id is not None),
        {
            "provider_id": provider_id,
            "appointment_type_id": appointment_type_id,
            "day_before": start - timedelta(days=1),
            "day_after": end + timedelta(days=1),
            "exclude_id": exclude_id,
        },
    )
    counts: dict[date, int] = defaultdict(int)
    for (start_at,) in found:
        counts[start_at.astimezone(tz).date()] += 1
    return counts


# A provider with the weekly hours and their locations, which every slot search needs: one
# statement instead of three.
_WITH_HOURS = [joinedload(Provider.hours).joinedload(ProviderHours.location)]


def get_provider(provider_id: int) -> Provider | None:
    """The provider, their weekly hours and the locations of those loaded together."""
    return db.session.get(Provider, provider_id, options=_WITH_HOURS)


def active_providers() -> list[Provider]:
    """The providers taking appointments, by id, with their weekly hours and those hours'
    locations (two statements for all of them)."""
    return db.session.scalars(
        select(Provider)
        .where(Provider.active.is_(True))
        .order_by(Provider.id)
        .options(selectinload(Provider.hours).joinedload(ProviderHours.location))
    ).all()


def provider_schedules(provider: Provider, start: datetime, end: datetime):
    """Per location: the weekly windows and the date overrides of the provider there."""
    by_location: dict[int, list[av.Window]] = defaultdict(list)
    for h in provider.hours:
        by_location[h.location_id].append(av.Window(h.weekday, h.start_time, h.end_time))
    if not by_location:
        return {}
    first, last = (start - timedelta(days=1)).date(), (end + timedelta(days=1)).date()
    exceptions = db.session.scalars(
        _exceptions_query(), {"provider_id": provider.id, "first": first, "last": last}
    ).all()
    usual = _usual_location(dict(by_location))  # weekly places only
    for ex in exceptions:  # a day's hours at a place they don't usually work count there
        if ex.start_time and ex.end_time and ex.location_id is not None:
            by_location.setdefault(ex.location_id, [])
    closures = db.session.scalars(
        _closures_query(), {"location_ids": list(by_location), "first": first, "last": last}
    ).all()
    out = {}
    for location_id, windows in by_location.items():
        overrides: dict[date, list[tuple[time, time]]] = {}
        for ex in exceptions:
            # the exception replaces the day everywhere; its hours are at one place
            day_windows = overrides.setdefault(ex.day, [])
            where = ex.location_id if ex.location_id is not None else usual(ex.day)
            if ex.start_time and ex.end_time and where == location_id:
                day_windows.append((ex.start_time, ex.end_time))
        for closure in closures:
            if closure.location_id == location_id:
                overrides[closure.day] = []
        out[location_id] = (windows, overrides)
    return out


def _usual_location(by_location: dict[int, list[av.Window]]):
    """Where a date exception without a location puts its hours: the place the provider
    works on that weekday (the first by id if several), else their first place."""

    def usual(day: date) -> int:
        that_day = [
            loc
            for loc, windows in by_location.items()
            if any(w.weekday == day.weekday() for w in windows)
        ]
        return min(that_day or by_location)

    return usual


def search_slots(
    appointment_type: AppointmentType,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    provider: Provider | None = None,
    exclude_appointment_id: int | None = None,
) -> list[FoundSlot]:
    """Free slots of one type, across active providers (or one), sorted by start then
    provider."""
    if provider is not None:
        providers = [provider] if provider.active else []
    else:
        providers = active_providers()
    rules = rules_for(appointment_type)
    # what a slot starting in [start, end) can collide with, buffers included
    reach = (start - rules.buffer_before, end + rules.duration + rules.buffer_after)
    found: list[FoundSlot] = []
    for provider in providers:
        schedules = provider_schedules(provider, start, end)
        if not schedules:
            continue
        busy = _busy(provider.id, *reach, exclude_appointment_id)
        for location_id, (windows, overrides) in schedules.items():
            location = db.session.get(Location, location_id)  # loaded with the hours
            if not location.active:
                continue
            tz = ZoneInfo(location.timezone)
            per_day = (
                _booked_per_day(
                    provider.id, appointment_type.id, start, end, tz, exclude_appointment_id
                )
                if rules.daily_cap
                else {}
            )
            for slot in av.free_slots(
                tz=tz,
                weekly=windows,
                overrides=overrides,
                busy=busy,
                booked_per_day=per_day,
                rules=rules,
                start=start,
                end=end,
                now=now,
            ):
                found.append(FoundSlot(provider.id, location_id, slot.start, slot.end))
    found.sort(key=lambda s: (s.start, s.provider_id))
    return found


def _offered(appointment_type, provider, start, now, exclude_id=None) -> FoundSlot | None:
    for slot in search_slots(
        appointment_type,
        start,
        start + timedelta(minutes=1),
        now=now,
        provider=provider,
        exclude_appointment_id=exclude_id,
    ):
        if slot.start == start:
            return slot
    return None


def staff_location(provider: Provider, start: datetime, end: datetime) -> int | None:
    """The location where the provider works over [start, end), ignoring notice and grid."""
    for location_id, (windows, overrides) in provider_schedules(provider, start, end).items():
        location = db.session.get(Location, location_id)
        if not location.active:  # as in search_slots: a closed-down place takes no bookings
            continue
        tz = ZoneInfo(location.timezone)
        day = start.astimezone(tz).date()
        for interval in av.working_intervals(day, tz, windows, overrides):
            if interval.start <= start and end <= interval.end:
                return location_id
    return None


def _occupy(appointment: Appointment, appointment_type: AppointmentType, start: datetime) -> None:
    rules = rules_for(appointment_type)
    appointment.start_at = start.astimezone(UTC)
    appointment.end_at = appointment.start_at + rules.duration
    appointment.occupied_start = appointment.start_at - rules.buffer_before
    appointment.occupied_end = appointment.end_at + rules.buffer_after


def _flush_or_conflict(new: Appointment | None = None) -> None:
    """Flush (and insert ``new`` with one statement); the database's refusal of an overlap
    becomes SlotUnavailable.

    After SlotUnavailable the transaction is spoilt: the caller rolls it back.
    """
    try:
        if new is None:
            db.session.flush()
        else:
            database.insert(new)
    except (IntegrityError, DBAPIError) as exc:
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if code in _CONFLICT_CODES or "slot_unavailable" in str(exc.orig):
            raise SlotUnavailable("That time is no longer available.") from None
        if "uq_appointment_request_active" in str(exc.orig) or (
            "UNIQUE" in str(exc.orig) and "consultation_request_id" in str(exc.orig)
        ):
            raise AlreadyBooked("This request already has an appointment.") from None
        raise


def live_appointment(consultation_request_id: int | None) -> Appointment | None:
    """The appointment this intake request booked, if it is still on (one per request)."""
    if consultation_request_id is None:
        return None
    return db.session.scalars(
        select(Appointment).where(
            Appointment.consultation_request_id == consultation_request_id,
            Appointment.status.in_(ACTIVE_STATUSES),
        )
    ).first()


def _check_daily_cap(
    provider: Provider,
    appointment_type: AppointmentType,
    start: datetime,
    location_id: int,
    exclude_id: int | None,
) -> None:
    """Staff skip the notice and the grid, not the per-day cap (counted in the location's
    local day, as the slot search does); DailyCapReached past it."""
    cap = appointment_type.daily_cap
    if cap is None:
        return
    tz = ZoneInfo(db.session.get(Location, location_id).timezone)
    day = start.astimezone(tz).date()
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    booked = _booked_per_day(
        provider.id, appointment_type.id, midnight, midnight + timedelta(days=1), tz, exclude_id
    )
    if booked.get(day, 0) >= cap:
        raise DailyCapReached(
            f"The day's cap of {cap} {appointment_type.name} appointments with {provider.name} "
            "is reached."
        )


def staff_slot_location(
    provider: Provider,
    appointment_type: AppointmentType,
    start: datetime,
    *,
    exclude_id: int | None = None,
) -> int:
    """The location where staff can book this start, or SlotUnavailable (DailyCapReached past
    the type's per-day cap). Takes no lock: a booking takes it first (_where)."""
    # Staff may book off the grid, inside the notice period and after the fact (a walk-in),
    # but not over time off (the database guard covers appointments only) nor past the
    # type's per-day cap.
    start = start.astimezone(UTC)  # elapsed time: a zone's wall clock skips on DST nights
    end = start + timedelta(minutes=appointment_type.duration_minutes)
    rules = rules_for(appointment_type)
    span = av.Interval(start - rules.buffer_before, end + rules.buffer_after)
    taken = _busy(provider.id, span.start, span.end, exclude_id)
    location_id = None if taken else staff_location(provider, start, end)
    if location_id is None:
        raise SlotUnavailable("That time is not offered.")
    _check_daily_cap(provider, appointment_type, start, location_id, exclude_id)
    return location_id


# Staff skip the notice and the horizon, within these bounds: a walk-in entered after the fact
# (the same day, or first thing the next morning), and no further ahead than a patient's manage
# link lives (links.MAX_AGE, 400 days from the booking).
STAFF_BOOKS_BACK = timedelta(hours=24)
STAFF_BOOKS_AHEAD = timedelta(days=365)


def _check_staff_reach(start: datetime, now: datetime) -> None:
    """A typo'd year (1926, 2062) is refused, not booked and emailed to the patient."""
    if start < now - STAFF_BOOKS_BACK:
        raise ValidationFailed(
            {"start": ["Choose a time no more than 24 hours ago (a walk-in entered late)."]}
        )
    if start > now + STAFF_BOOKS_AHEAD:
        raise ValidationFailed({"start": ["Choose a time no more than a year ahead."]})


def _lock_capped_type(provider: Provider, appointment_type: AppointmentType) -> None:
    """Serialize the provider's bookings of a type with a per-day cap, until commit.

    The database guard stops overlaps only: two bookings at different times of a day with one
    place left would both see it free. On PostgreSQL a transaction lock per provider and type
    makes the second wait for the first and then count it (a lock per day would need the day
    in the location's zone, which is known only later). SQLite's transactions begin
    IMMEDIATE, which serializes every booking already.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:provider, :type)"),
            {"provider": provider.id, "type": appointment_type.id},
        )


def _where(
    provider: Provider,
    appointment_type: AppointmentType,
    start: datetime,
    *,
    now: datetime,
    staff: bool,
    exclude_id: int | None = None,
) -> int:
    """The location of a bookable start, or SlotUnavailable."""
    if start.tzinfo is None:
        raise ValidationFailed({"start": ["Give the time with its offset."]})
    if appointment_type.daily_cap is not None:
        _lock_capped_type(provider, appointment_type)
    if staff:
        _check_staff_reach(start, now)
        return staff_slot_location(provider, appointment_type, start, exclude_id=exclude_id)
    slot = _offered(appointment_type, provider, start, now, exclude_id)
    if slot is None:
        raise SlotUnavailable("That time is not offered.")
    return slot.location_id


def book_appointment(
    patient: Patient,
    appointment_type: AppointmentType,
    provider: Provider,
    start: datetime,
    *,
    now: datetime,
    actor: StaffUser | None,
    source: str,
    consultation_request_id: int | None = None,
    client: dict | None = None,
) -> Appointment:
    """Book a slot. Patients get offered slots only; staff any time within working hours, up
    to the type's per-day cap."""
    staff = actor is not None
    if not staff and not appointment_type.patient_bookable:
        raise ValidationFailed({"appointment_type": ["This kind of visit is booked by staff."]})
    try:
        location_id = _where(provider, appointment_type, start, now=now, staff=staff)
    except SlotUnavailable:
        # The same request sent again (a retry after a lost answer) finds its own booking in
        # that slot: say it is booked, not that the time was taken by someone else.
        if live_appointment(consultation_request_id) is not None:
            raise AlreadyBooked("This request already has an appointment.") from None
        raise
    appointment = Appointment(
        patient=patient,
        provider=provider,
        location_id=location_id,
        appointment_type=appointment_type,
        status=AppointmentStatus.BOOKED,
        source=source,
        consultation_request_id=consultation_request_id,
        created_by_id=actor.id if actor else None,
        created_at=now,
        updated_at=now,
    )
    _occupy(appointment, appointment_type, start)
    _flush_or_conflict(new=appointment)
    request = (
        db.session.get(ConsultationRequest, consultation_request_id)
        if consultation_request_id
        else None
    )
    if request is not None and request.patient_id == patient.id:
        intake_services.mark_booked(request, now=now)
    notifications.appointment_booked(appointment, now=now)
    audit.record(
        "create",
        actor=actor,
        actor_role=None if actor else audit.PATIENT,
        patient_id=patient.id,
        resource_type="appointment",
        resource_id=appointment.id,
        changed_fields=["status", "start_at", "provider_id"],
        reason=f"booked {appointment.start_at.isoformat()} provider {provider.id}",
        client=client,
        now=now,
    )
    return appointment


def _lock(appointment: Appointment) -> None:
    """Lock the appointment's row until commit and re-read it.

    A change reads the row before it writes it; without the lock, two changes of one
    appointment (a move and a cancel, arrived and cancelled) both check the state they read and
    the second overwrites the first: a cancelled appointment moved, a status change outside
    TRANSITIONS, a sequence bumped once for two revisions. With it, the second waits and then
    checks what the first left. (SQLite's transactions begin IMMEDIATE: already serialized.)
    """
    db.session.flush()  # re-reading must not drop changes made to it so far
    # same identity: this refreshes the caller's object in place
    db.session.get(Appointment, appointment.id, with_for_update=True, populate_existing=True)


def _freed_time(appointment: Appointment, by: FreedBy, *, now: datetime) -> FreedTime | None:
    """The appointment's current time as given up, for the waitlist; None if it has begun."""
    if appointment.start_at <= now:
        return None
    return FreedTime(
        appointment_id=appointment.id,
        provider_id=appointment.provider_id,
        appointment_type_id=appointment.appointment_type_id,
        start_at=appointment.start_at,
        end_at=appointment.end_at,
        occupied_start=appointment.occupied_start,
        occupied_end=appointment.occupied_end,
        freed_by=by,
        freed_at=now,
    )


# Status changes that give an appointment's time back (a no-show's time has come: it frees
# nothing the waitlist could use).
_FREES_TIME = {
    AppointmentStatus.CANCELLED: FreedBy.CANCELLED,
    AppointmentStatus.ENTERED_IN_ERROR: FreedBy.ENTERED_IN_ERROR,
}


def patient_may_change(appointment: Appointment, now: datetime) -> bool:
    """From the patient's link: only a booked, future, patient-bookable appointment."""
    return (
        appointment.status == AppointmentStatus.BOOKED
        and appointment.start_at > now
        and appointment.appointment_type.patient_bookable
    )


def _check_patient_may_change(appointment: Appointment, now: datetime) -> None:
    if not patient_may_change(appointment, now):
        raise DomainError("This appointment can't be changed online. Please call us.")


def reschedule(
    appointment: Appointment,
    start: datetime,
    *,
    now: datetime,
    actor: StaffUser | None,
    provider: Provider | None = None,
    client: dict | None = None,
) -> Appointment:
    """Move an appointment (same row, so old links lead to it); bumps its sequence."""
    _lock(appointment)
    if appointment.status not in (AppointmentStatus.BOOKED, AppointmentStatus.PENDING):
        raise DomainError(f"A {appointment.status} appointment can't be moved.")
    if actor is None:
        _check_patient_may_change(appointment, now)
    provider = provider or appointment.provider
    if (start, provider.id) == (appointment.start_at, appointment.provider_id):
        # Already there (the same move sent twice, the second waiting on the lock): nothing to
        # change, so no new revision and no second "moved" message.
        return appointment
    if not provider.active:
        raise ValidationFailed({"provider_id": ["This provider is not taking appointments."]})
    old = (appointment.start_at, appointment.provider_id, appointment.location_id)
    left = _freed_time(appointment, FreedBy.MOVED, now=now)  # read before it moves
    location_id = _where(
        provider,
        appointment.appointment_type,
        start,
        now=now,
        staff=actor is not None,
        exclude_id=appointment.id,
    )
    appointment.provider = provider
    appointment.provider_id = provider.id
    appointment.location_id = location_id
    _occupy(appointment, appointment.appointment_type, start)
    appointment.sequence += 1
    appointment.updated_at = now
    _flush_or_conflict()
    if left is not None and (left.start_at, left.provider_id) != (
        appointment.start_at,
        appointment.provider_id,
    ):
        database.insert(left, keep=False)
    notifications.appointment_rescheduled(appointment, now=now)
    audit.record_about(
        "update",
        appointment,
        actor=actor,
        actor_role=None if actor else audit.PATIENT,
        changed_fields=["start_at", "provider_id", "location_id"],
        reason=f"from {old[0].isoformat()} provider {old[1]} location {old[2]} to "
        f"{appointment.start_at.isoformat()} provider {provider.id} location {location_id}",
        client=client,
        now=now,
    )
    return appointment


# Desk statuses record the visit, so they wait for it: arrived and checked in from the start of
# its day (in its location's zone), a no-show from its start time. A click on a future
# appointment would otherwise free its time without a word to the patient. (Fulfilled follows
# arrived or checked in only, so it waits for the day too: a patient seen early is done early.)
_FROM_ITS_DAY = {AppointmentStatus.ARRIVED, AppointmentStatus.CHECKED_IN}
_FROM_ITS_START = {AppointmentStatus.NOSHOW}


def said(status: str) -> str:
    """A status in words: "no-show", "checked in", "entered in error"."""
    return "no-show" if status == AppointmentStatus.NOSHOW else status.replace("-", " ")


def too_early(appointment: Appointment, status: str, now: datetime) -> str | None:
    """Why ``status`` can't be recorded yet for this appointment, or None when it can."""
    if status in _FROM_ITS_START and now < appointment.start_at:
        return f"Mark an appointment {said(status)} once it has started."
    if status in _FROM_ITS_DAY:
        tz = ZoneInfo(appointment.location.timezone)
        if now.astimezone(tz).date() < appointment.start_at.astimezone(tz).date():
            return f"Mark an appointment {said(status)} on its day, not before."
    return None


def next_statuses(appointment: Appointment, now: datetime) -> set[str]:
    """The statuses this appointment may move to now (models.TRANSITIONS, less the early)."""
    return {s for s in TRANSITIONS[appointment.status] if too_early(appointment, s, now) is None}


def change_status(
    appointment: Appointment,
    status: str,
    *,
    now: datetime,
    actor: StaffUser | None,
    reason: str = "",
    client: dict | None = None,
) -> Appointment:
    """Move along the FHIR status graph (models.TRANSITIONS); cancelling keeps the row."""
    if status not in TRANSITIONS:
        raise ValidationFailed({"status": [f"Give one of: {', '.join(TRANSITIONS)}."]})
    _lock(appointment)
    if actor is None:
        _check_patient_may_change(appointment, now)
    if status not in TRANSITIONS[appointment.status]:
        # the state, not the input, refuses it (another tab, or another person, was first)
        if status == appointment.status:
            raise DomainError(f"This appointment is {said(status)} already.")
        raise DomainError(
            f"A {said(appointment.status)} appointment can't be marked {said(status)}."
        )
    early = too_early(appointment, status, now)
    if early is not None:
        raise ValidationFailed({"status": [early]})
    reason = (reason or "").strip()
    if len(reason) > 500:
        raise ValidationFailed({"reason": ["Use at most 500 characters."]})
    if status == AppointmentStatus.CANCELLED:
        if not reason:
            raise ValidationFailed({"reason": ["Give a reason for cancelling."]})
        appointment.cancel_reason = reason
        appointment.cancelled_at = now
        appointment.sequence += 1  # calendars treat a cancellation as a new revision
        appointment.cancelled_by_id = actor.id if actor else None
    old = appointment.status
    appointment.status = status
    appointment.updated_at = now
    _flush_or_conflict()
    if old in ACTIVE_STATUSES and status in _FREES_TIME:
        freed = _freed_time(appointment, _FREES_TIME[status], now=now)
        if freed is not None:
            database.insert(freed, keep=False)
    notifications.appointment_status_changed(appointment, old, now=now)
    audit.record_about(
        "update",
        appointment,
        actor=actor,
        actor_role=None if actor else audit.PATIENT,
        changed_fields=["status"],
        reason=f"{old} -> {status}" + (f": {reason}" if reason else ""),
        client=client,
        now=now,
    )
    return appointment


def cancel(
    appointment: Appointment,
    reason: str,
    *,
    now: datetime,
    actor: StaffUser | None,
    client: dict | None = None,
) -> Appointment:
    """Cancel, keeping the row with its reason and who did it."""
    return change_status(
        appointment, AppointmentStatus.CANCELLED, now=now, actor=actor, reason=reason, client=client
    )


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


def appointments_between(
    start: datetime, end: datetime, *, provider_id: int | None = None, status: str | None = None
) -> Sequence[Appointment]:
    """Appointments starting in [start, end), by time then provider, with their patients and
    types loaded up front (lists show both; not one query per row)."""
    query = (
        select(Appointment)
        .options(selectinload(Appointment.patient), selectinload(Appointment.appointment_type))
        .where(Appointment.start_at >= start, Appointment.start_at < end)
    )
    if provider_id is not None:
        query = query.where(Appointment.provider_id == provider_id)
    if status:
        query = query.where(Appointment.status == status)
    return db.session.scalars(query.order_by(Appointment.start_at, Appointment.provider_id)).all()


def install_default_types() -> list[AppointmentType]:
    """Create the default appointment types (appointment-types.json) that don't exist yet."""
    import json
    from pathlib import Path

    defaults = json.loads((Path(__file__).parent / "appointment-types.json").read_text())
    existing = set(db.session.scalars(select(AppointmentType.code)))
    created = [
        AppointmentType(**spec) for spec in defaults["types"] if spec["code"] not in existing
    ]
    db.session.add_all(created)
    db.session.flush()
    return created
