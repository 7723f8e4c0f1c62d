"""Editing the schedule's building blocks: locations, providers' hours, exceptions, time off,
closures and appointment types. Services flush, never commit."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import func, select

from clinic import audit
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.limits import sane_moment
from clinic.models import StaffUser
from clinic.scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentType,
    ClinicClosure,
    Location,
    Provider,
    ProviderHours,
    ScheduleException,
    TimeOff,
)
from clinic.scheduling.services import new_feed_token

TYPE_LIMITS = {  # field: (min, max)
    "duration_minutes": (5, 480),
    "buffer_before_minutes": (0, 240),
    "buffer_after_minutes": (0, 240),
    "step_minutes": (5, 240),
    "min_notice_minutes": (0, 60 * 24 * 60),
    "horizon_days": (1, 730),
    "daily_cap": (1, 100),
}


def _log(actor: StaffUser, resource_type: str, resource_id, fields: list[str], now) -> None:
    audit.record(
        "config_change",
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        changed_fields=fields,
        now=now,
    )


def _check_zone(name: str | None) -> None:
    """A location's zone is the clinic's: every time the clinic shows (slots, pages, the
    calendar, messages) is in CLINIC_TIMEZONE, so hours kept in another zone would be shown
    an hour or more off, and a patient would come at the wrong time."""
    try:
        ZoneInfo(name or "")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            {"timezone": ["Use a time zone name like America/New_York."]}
        ) from None
    clinic_zone = current_app.config["CLINIC_TIMEZONE"]
    if name != clinic_zone:
        raise ValidationFailed(
            {
                "timezone": [
                    f"Use the clinic's time zone, {clinic_zone}: every time the clinic shows "
                    "is in it (set by CLINIC_TIMEZONE)."
                ]
            }
        )


def _update(row, resource_type: str, values: dict, *, actor: StaffUser, now: datetime) -> list:
    """Set the values that differ and log their names; the changed names, sorted."""
    changed = sorted(name for name, value in values.items() if getattr(row, name) != value)
    for name in changed:
        setattr(row, name, values[name])
    db.session.flush()
    if changed:
        _log(actor, resource_type, row.id, changed, now)
    return changed


def add_location(values: dict, *, actor: StaffUser, now: datetime) -> Location:
    """A new clinic location (address, phone, time zone)."""
    _check_zone(values.get("timezone"))
    location = Location(**values)
    db.session.add(location)
    db.session.flush()
    _log(actor, "location", location.id, sorted(values), now)
    return location


def add_provider(name: str, title: str, *, actor: StaffUser, now: datetime) -> Provider:
    provider = Provider(name=name.strip(), title=title.strip(), feed_token=new_feed_token())
    db.session.add(provider)
    db.session.flush()
    _log(actor, "provider", provider.id, ["name", "title"], now)
    return provider


def update_location(
    location: Location, values: dict, *, actor: StaffUser, now: datetime
) -> list[str]:
    """Change a location's details; ``active`` False stops new bookings there (existing
    appointments stay: staff move or cancel them)."""
    _check_zone(values.get("timezone", location.timezone))
    return _update(location, "location", values, actor=actor, now=now)


def update_provider(
    provider: Provider, values: dict, *, actor: StaffUser, now: datetime
) -> list[str]:
    """Change a provider's name or title; ``active`` False stops new bookings with them."""
    values = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
    if "name" in values and not values["name"]:
        raise ValidationFailed({"name": ["Enter the provider's name."]})
    return _update(provider, "provider", values, actor=actor, now=now)


def future_appointments(now: datetime, *, provider=None, location=None) -> int:
    """How many appointments still hold time from now on with this provider or place."""
    query = select(func.count(Appointment.id)).where(
        Appointment.status.in_(ACTIVE_STATUSES), Appointment.end_at > now
    )
    if provider is not None:
        query = query.where(Appointment.provider_id == provider.id)
    if location is not None:
        query = query.where(Appointment.location_id == location.id)
    return db.session.scalar(query) or 0


def _check_times(start: time, end: time) -> None:
    if end <= start:
        raise ValidationFailed({"end_time": ["End must be after start."]})


def add_hours(
    provider: Provider,
    location: Location,
    weekday: int,
    start: time,
    end: time,
    *,
    actor: StaffUser,
    now: datetime,
) -> ProviderHours:
    """A weekly working block; overlapping blocks of one provider on one day are refused."""
    _check_times(start, end)
    for other in provider.hours:
        if other.weekday == weekday and other.start_time < end and start < other.end_time:
            raise ValidationFailed({"start_time": ["This overlaps hours already set that day."]})
    row = ProviderHours(
        provider=provider, location=location, weekday=weekday, start_time=start, end_time=end
    )
    db.session.add(row)
    db.session.flush()
    _log(actor, "provider_hours", row.id, ["weekday", "start_time", "end_time"], now)
    return row


REMOVABLE = {  # what staff may delete outright, by the audit log's name for it
    "provider_hours": ProviderHours,
    "schedule_exception": ScheduleException,
    "time_off": TimeOff,
    "clinic_closure": ClinicClosure,
}


def remove(row, *, actor: StaffUser, now: datetime) -> None:
    """Delete weekly hours, a date exception, time off or a closure (logged first)."""
    resource_type = next(name for name, model in REMOVABLE.items() if isinstance(row, model))
    _log(actor, resource_type, row.id, ["deleted"], now)
    db.session.delete(row)
    db.session.flush()


def add_exception(
    provider: Provider,
    day: date,
    start: time | None,
    end: time | None,
    reason: str,
    *,
    location: Location | None,
    actor: StaffUser,
    now: datetime,
) -> ScheduleException:
    """One date's hours (or none: not working), replacing the weekly hours that day."""
    if (start is None) != (end is None):
        raise ValidationFailed({"end_time": ["Give both times, or neither for a day off."]})
    if start is not None:
        _check_times(start, end)
    row = ScheduleException(
        provider_id=provider.id,
        location_id=location.id if location else None,
        day=day,
        start_time=start,
        end_time=end,
        reason=reason,
    )
    db.session.add(row)
    db.session.flush()
    _log(actor, "schedule_exception", row.id, ["day", "start_time", "end_time"], now)
    return row


def add_time_off(
    provider: Provider,
    start: datetime,
    end: datetime,
    reason: str,
    *,
    actor: StaffUser,
    now: datetime,
) -> TimeOff:
    if not (sane_moment(start) and sane_moment(end)):
        raise ValidationFailed({"start": ["Give dates between the years 1900 and 2999."]})
    if end <= start:
        raise ValidationFailed({"end": ["End must be after start."]})
    row = TimeOff(provider_id=provider.id, start_at=start, end_at=end, reason=reason)
    db.session.add(row)
    db.session.flush()
    _log(actor, "time_off", row.id, ["start_at", "end_at"], now)
    return row


def add_closure(
    location: Location, day: date, reason: str, *, actor: StaffUser, now: datetime
) -> ClinicClosure:
    exists = db.session.scalar(
        select(ClinicClosure.id).where(
            ClinicClosure.location_id == location.id, ClinicClosure.day == day
        )
    )
    if exists:
        raise ValidationFailed({"day": ["This location is already closed that day."]})
    row = ClinicClosure(location_id=location.id, day=day, reason=reason)
    db.session.add(row)
    db.session.flush()
    _log(actor, "clinic_closure", row.id, ["day"], now)
    return row


def update_type(
    appointment_type: AppointmentType, values: dict, *, actor: StaffUser, now: datetime
) -> None:
    """Change an appointment type's durations, buffers and booking rules."""
    errors = {}
    for field, (lo, hi) in TYPE_LIMITS.items():
        value = values.get(field)
        if value is None:
            if field != "daily_cap":
                errors[field] = ["This is required."]
            continue
        if not (lo <= value <= hi):
            errors[field] = [f"Enter a number from {lo} to {hi}."]
    if errors:
        raise ValidationFailed(errors)
    if "name" in values:
        values = {**values, "name": (values["name"] or "").strip()}
        if not values["name"]:
            raise ValidationFailed({"name": ["Enter the name patients and staff see."]})
    _update(appointment_type, "appointment_type", values, actor=actor, now=now)
