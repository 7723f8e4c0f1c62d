"""Date exceptions: a day's hours replace the weekly ones, at one place."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from clinic.extensions import db
from clinic.scheduling import services
from clinic.scheduling.models import (
    AppointmentType,
    Location,
    Provider,
    ProviderHours,
    ScheduleException,
)

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
DAY = date(2026, 12, 2)  # a Wednesday


def _second_location() -> Location:
    location = Location(
        name="Riverside Annex",
        address_line1="8 River Road",
        city="Springfield",
        state="MA",
        zip="01104",
        phone="(555) 010-0200",
        timezone="America/New_York",
    )
    db.session.add(location)
    db.session.flush()
    return location


def _day_slots(schedule, provider_id: int) -> list[tuple[int, str]]:
    consultation = db.session.get(AppointmentType, schedule["types"]["consultation"])
    start = datetime.combine(DAY, time(0), tzinfo=NY)
    end = datetime.combine(DAY, time(23, 59), tzinfo=NY)
    found = services.search_slots(
        consultation, start, end, now=NOW, provider=db.session.get(Provider, provider_id)
    )
    return [(s.location_id, s.start.astimezone(NY).strftime("%H:%M")) for s in found]


def test_an_exception_at_a_place_without_weekly_hours_moves_the_day_there(app, schedule):
    """Old code: the day emptied at the usual place and nothing was offered at the other."""
    with app.app_context():
        annex = _second_location()
        provider = schedule["providers"][0]
        db.session.add(
            ScheduleException(
                provider_id=provider,
                location_id=annex.id,
                day=DAY,
                start_time=time(13),
                end_time=time(15),
                reason="Covering the annex",
            )
        )
        db.session.commit()
        slots = _day_slots(schedule, provider)
        assert slots and {location for location, _ in slots} == {annex.id}
        assert [t for _, t in slots][0] == "13:00" and all("13:00" <= t < "15:00" for _, t in slots)
        # the booking path agrees with the search
        consultation = db.session.get(AppointmentType, schedule["types"]["consultation"])
        at = datetime.combine(DAY, time(13), tzinfo=NY)
        where = services._where(
            db.session.get(Provider, provider), consultation, at, now=NOW, staff=False
        )
        assert where == annex.id
        db.session.rollback()


def test_an_exception_without_a_place_is_offered_once_where_they_work_that_day(app, schedule):
    """Old code copied its hours to every place the provider has hours: the same time twice."""
    with app.app_context():
        annex = _second_location()
        provider = db.session.get(Provider, schedule["providers"][0])
        provider.hours.append(
            ProviderHours(location=annex, weekday=4, start_time=time(8), end_time=time(12))
        )  # Fridays at the annex too; Wednesdays only at Main Street
        db.session.add(
            ScheduleException(
                provider_id=provider.id, day=DAY, start_time=time(9), end_time=time(11)
            )
        )
        db.session.commit()
        slots = _day_slots(schedule, provider.id)
        starts = [t for _, t in slots]
        assert starts and len(starts) == len(set(starts))  # no time offered twice
        assert {location for location, _ in slots} == {schedule["location"]}
        assert all("09:00" <= t < "11:00" for t in starts)


def test_an_exception_with_no_hours_means_not_working_anywhere(app, schedule):
    with app.app_context():
        annex = _second_location()
        provider = db.session.get(Provider, schedule["providers"][0])
        provider.hours.append(
            ProviderHours(location=annex, weekday=2, start_time=time(18), end_time=time(20))
        )
        db.session.add(ScheduleException(provider_id=provider.id, day=DAY, reason="Off"))
        db.session.commit()
        assert _day_slots(schedule, provider.id) == []
