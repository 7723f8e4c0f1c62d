"""Free-slot computation: examples, DST in New York, and properties over random schedules.

Pure functions only: no database, no app, no fixtures. Instants are compared in UTC because
aware datetimes sharing a tzinfo are compared and subtracted by wall clock, ignoring DST.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinic.scheduling.availability import (
    Interval,
    Slot,
    SlotRules,
    Window,
    free_slots,
    working_intervals,
)

NY = ZoneInfo("America/New_York")
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MONDAY = date(2026, 6, 1)  # far from any DST change


def rules(**overrides) -> SlotRules:
    values = {
        "duration": timedelta(minutes=30),
        "buffer_before": timedelta(0),
        "buffer_after": timedelta(0),
        "step": timedelta(minutes=30),
        "min_notice": timedelta(0),
        "horizon": timedelta(days=365),
        "daily_cap": None,
    }
    return SlotRules(**{**values, **overrides})


def at(day: date, hour: int, minute: int = 0, tz: ZoneInfo = NY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def search(*, weekly, day: date = MONDAY, days: int = 1, tz: ZoneInfo = NY, **kwargs) -> list[Slot]:
    """Slots over whole local days from `day`, with a `now` long before unless given."""
    start = at(day, 0, tz=tz)
    params = {
        "tz": tz,
        "weekly": weekly,
        "overrides": {},
        "busy": [],
        "booked_per_day": {},
        "rules": rules(),
        "start": start,
        "end": datetime.combine(day + timedelta(days=days), time(0), tzinfo=tz),
        "now": start - 7 * DAY,
    }
    return free_slots(**{**params, **kwargs})


def walls(slots: list[Slot]) -> list[str]:
    return [s.start.strftime("%H:%M") for s in slots]


def weekdays(start: time, end: time) -> list[Window]:
    return [Window(d, start, end) for d in range(5)]


# -- examples --------------------------------------------------------------------------------


def test_plain_weekday():
    slots = search(weekly=weekdays(time(9), time(12)))
    assert walls(slots) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    for slot in slots:
        assert slot.start.tzinfo is NY
        assert slot.start.utcoffset() == -4 * HOUR  # June: EDT
        assert utc(slot.end) - utc(slot.start) == timedelta(minutes=30)


def test_no_slot_on_a_day_without_hours():
    assert search(weekly=[Window(1, time(9), time(17))]) == []  # Tuesday hours, Monday search


def test_lunch_break_leaves_no_slot_across_it():
    weekly = [Window(0, time(9), time(12)), Window(0, time(13), time(17))]
    slots = search(weekly=weekly, rules=rules(duration=timedelta(minutes=45), step=15 * MIN))
    lunch = Interval(at(MONDAY, 12), at(MONDAY, 13))
    assert not any(Interval(s.start, s.end).overlaps(lunch) for s in slots)
    starts = walls(slots)
    assert starts[0] == "09:00"
    assert "11:15" in starts and "11:30" not in starts  # 11:15 + 45 min ends at noon
    assert "13:00" in starts and starts[-1] == "16:15"


def test_empty_or_reversed_window_is_ignored():
    weekly = [Window(0, time(12), time(12)), Window(0, time(15), time(10))]
    assert search(weekly=weekly) == []


def test_buffers_push_slots_away_from_busy_interval_by_exactly_the_buffer():
    busy = [Interval(at(MONDAY, 12), at(MONDAY, 13))]
    r = rules(buffer_before=10 * MIN, buffer_after=15 * MIN, step=5 * MIN)
    starts = walls(search(weekly=weekdays(time(9), time(17)), busy=busy, rules=r))
    # Before: the slot's end plus its 15-minute after-buffer may touch noon but not pass it.
    assert "11:15" in starts and "11:20" not in starts
    # After: its 10-minute before-buffer may start at 13:00 but not earlier.
    assert "13:10" in starts and "13:05" not in starts
    assert not any("11:20" <= s < "13:10" for s in starts)


def test_overlapping_and_nested_busy_intervals():
    busy = [
        Interval(at(MONDAY, 9), at(MONDAY, 13)),
        Interval(at(MONDAY, 10), at(MONDAY, 10, 30)),
        Interval(at(MONDAY, 12, 30), at(MONDAY, 14)),
        Interval(at(MONDAY, 15), at(MONDAY, 15)),  # empty: blocks nothing
    ]
    starts = walls(search(weekly=weekdays(time(9), time(17)), busy=busy))
    assert starts == ["14:00", "14:30", "15:00", "15:30", "16:00", "16:30"]


def test_busy_intervals_in_any_zone_and_order():
    busy = [
        Interval(utc(at(MONDAY, 15)), utc(at(MONDAY, 16))),
        Interval(at(MONDAY, 10, tz=ZoneInfo("Europe/London")), at(MONDAY, 11, tz=ZoneInfo("UTC"))),
    ]
    # 10:00 London = 09:00 UTC = 05:00 New York, until 07:00 New York.
    starts = walls(search(weekly=weekdays(time(6), time(17)), busy=busy))
    assert "06:30" not in starts and "07:00" in starts
    assert "14:30" in starts and "15:00" not in starts and "15:30" not in starts
    assert "16:00" in starts


def test_min_notice_edge():
    weekly = weekdays(time(9), time(17))
    r = rules(min_notice=2 * HOUR)
    # Exactly at now + notice is bookable; a step earlier is not.
    assert walls(search(weekly=weekly, rules=r, now=at(MONDAY, 8)))[0] == "10:00"
    # One minute later and the 10:00 slot is a minute too soon: the next step is first.
    assert walls(search(weekly=weekly, rules=r, now=at(MONDAY, 8, 1)))[0] == "10:30"


def test_horizon_edge():
    weekly = weekdays(time(9), time(17))
    r = rules(horizon=7 * HOUR)
    # Exactly at now + horizon is bookable; one step past it is not.
    assert walls(search(weekly=weekly, rules=r, now=at(MONDAY, 8)))[-1] == "15:00"
    assert walls(search(weekly=weekly, rules=r, now=at(MONDAY, 7, 59)))[-1] == "14:30"


def test_search_range_is_half_open():
    slots = search(weekly=weekdays(time(9), time(17)), start=at(MONDAY, 10), end=at(MONDAY, 11, 30))
    assert walls(slots) == ["10:00", "10:30", "11:00"]


def test_grid_starts_at_the_window_start():
    slots = search(weekly=weekdays(time(9, 10), time(11)), start=at(MONDAY, 9, 30))
    assert walls(slots) == ["09:40", "10:10"]  # 10:40 would end past 11:00


def test_daily_cap():
    weekly = weekdays(time(9), time(11))
    tuesday = MONDAY + DAY
    r = rules(daily_cap=3)
    below = search(weekly=weekly, days=2, rules=r, booked_per_day={MONDAY: 2})
    assert len(below) == 8
    reached = search(weekly=weekly, days=2, rules=r, booked_per_day={MONDAY: 3, tuesday: 1})
    assert [s.start.date() for s in reached] == [tuesday] * 4
    assert search(weekly=weekly, rules=rules(daily_cap=0)) == []


def test_empty_override_closes_the_day():
    weekly = weekdays(time(9), time(11))
    slots = search(weekly=weekly, days=2, overrides={MONDAY: []})
    assert {s.start.date() for s in slots} == {MONDAY + DAY}


def test_override_replaces_weekly_windows():
    weekly = weekdays(time(9), time(11))
    sunday = MONDAY - DAY
    overrides = {MONDAY: [(time(14), time(15))], sunday: [(time(10), time(11))]}
    slots = search(weekly=weekly, day=sunday, days=3, overrides=overrides)
    by_day = {d: [walls([s])[0] for s in slots if s.start.date() == d] for d in {sunday, MONDAY}}
    assert by_day == {sunday: ["10:00", "10:30"], MONDAY: ["14:00", "14:30"]}
    assert walls([s for s in slots if s.start.date() == MONDAY + DAY]) == [
        "09:00",
        "09:30",
        "10:00",
        "10:30",
    ]


def test_naive_datetimes_and_bad_rules_are_refused():
    with pytest.raises(ValueError, match="naive"):
        search(weekly=[], now=datetime(2026, 6, 1, 8))
    with pytest.raises(ValueError, match="step"):
        search(weekly=[], rules=rules(step=timedelta(0)))


def test_interval_overlap_is_half_open():
    a = Interval(at(MONDAY, 9), at(MONDAY, 10))
    assert not a.overlaps(Interval(at(MONDAY, 10), at(MONDAY, 11)))
    assert a.overlaps(Interval(at(MONDAY, 9, 59), at(MONDAY, 11)))
    assert not a.overlaps(Interval(at(MONDAY, 9, 30), at(MONDAY, 9, 30)))


# -- DST in New York -------------------------------------------------------------------------

SPRING, FALL = date(2026, 3, 8), date(2026, 11, 1)  # Sundays of the changes
SUNDAY_AND_WEEKDAYS = [Window(6, time(0), time(6)), Window(6, time(8), time(17))] + weekdays(
    time(8), time(17)
)


@pytest.mark.parametrize(
    ("day", "utc_hour", "offset"),
    [
        (date(2026, 3, 6), 14, -5),  # Friday, EST
        (date(2026, 3, 9), 13, -4),  # Monday, EDT
        (date(2026, 10, 30), 13, -4),  # Friday, EDT
        (date(2026, 11, 2), 14, -5),  # Monday, EST
        (SPRING, 13, -4),
        (FALL, 14, -5),
    ],
)
def test_nine_local_stays_nine_local_across_dst(day, utc_hour, offset):
    slots = search(weekly=SUNDAY_AND_WEEKDAYS, day=day, start=at(day, 8), end=at(day, 17))
    nine = next(s for s in slots if s.start.strftime("%H:%M") == "09:00")
    assert utc(nine.start) == datetime(day.year, day.month, day.day, utc_hour, tzinfo=UTC)
    assert all(s.start.utcoffset() == offset * HOUR for s in slots)
    assert len(slots) == 18  # 08:00-17:00 lies wholly on one side of the change


def test_spring_forward_night_is_23_hours_long():
    hourly = rules(duration=HOUR, step=HOUR)
    slots = search(weekly=SUNDAY_AND_WEEKDAYS, day=SPRING, end=at(SPRING, 7), rules=hourly)
    # 00:00-06:00 local spans five real hours: there is no 02:00.
    assert walls(slots) == ["00:00", "01:00", "03:00", "04:00", "05:00"]
    assert [s.start.utcoffset() / HOUR for s in slots] == [-5, -5, -4, -4, -4]
    assert utc(slots[1].end) == utc(slots[2].start)  # 01:00 EST + 1 h is 03:00 EDT
    half_hourly = search(weekly=SUNDAY_AND_WEEKDAYS, day=SPRING, end=at(SPRING, 7))
    assert len(half_hourly) == 10


def test_fall_back_night_is_25_hours_long():
    hourly = rules(duration=HOUR, step=HOUR)
    slots = search(weekly=SUNDAY_AND_WEEKDAYS, day=FALL, end=at(FALL, 7), rules=hourly)
    # 00:00-06:00 local spans seven real hours: 01:00 comes twice, EDT then EST.
    assert walls(slots) == ["00:00", "01:00", "01:00", "02:00", "03:00", "04:00", "05:00"]
    assert [s.start.utcoffset() / HOUR for s in slots] == [-4, -4, -5, -5, -5, -5, -5]
    assert [s.start.fold for s in slots[1:3]] == [0, 1]
    half_hourly = search(weekly=SUNDAY_AND_WEEKDAYS, day=FALL, end=at(FALL, 7))
    assert len(half_hourly) == 14


def test_no_slot_in_the_skipped_hour():
    slots = search(weekly=SUNDAY_AND_WEEKDAYS, day=SPRING, rules=rules(step=5 * MIN))
    assert slots
    assert not any(s.start.hour == 2 for s in slots)
    assert all(s.start.utcoffset() == (-5 if s.start.hour < 2 else -4) * HOUR for s in slots)


def test_window_edges_in_the_gap_and_the_repeated_hour():
    # 02:30 does not exist on SPRING: the first instant after the gap, 03:00 EDT, stands in.
    [spring] = working_intervals(SPRING, NY, [], {SPRING: [(time(2, 30), time(4))]})
    assert (utc(spring.start), utc(spring.end)) == (
        datetime(2026, 3, 8, 7, tzinfo=UTC),
        datetime(2026, 3, 8, 8, tzinfo=UTC),
    )
    # 01:30 happens twice on FALL: the first (EDT) is meant, so 01:30-02:00 lasts 1.5 hours.
    [fall] = working_intervals(FALL, NY, [], {FALL: [(time(1, 30), time(2))]})
    assert utc(fall.start) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert utc(fall.end) - utc(fall.start) == 90 * MIN
    # A window wholly inside the gap is empty.
    assert working_intervals(SPRING, NY, [], {SPRING: [(time(2, 5), time(2, 55))]}) == []


def test_buffers_are_absolute_time_across_the_gap():
    slot = search(weekly=SUNDAY_AND_WEEKDAYS, day=SPRING, start=at(SPRING, 3))[0]
    occupied = slot.occupied(rules(buffer_before=30 * MIN))
    assert walls([slot]) == ["03:00"]
    assert utc(occupied.start) == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST


# -- properties ------------------------------------------------------------------------------

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "UTC"]
# Every 2026 change of those zones, so that random searches often straddle one.
DST_DAYS = [
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 4, 5),
    date(2026, 10, 4),
]
wall_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
five_minutes = st.integers(1, 36).map(lambda n: timedelta(minutes=5 * n))


@st.composite
def real_spans(draw) -> tuple[time, time]:
    start = 60 * draw(st.integers(0, 23)) + draw(st.integers(0, 59))
    end = min(start + 60 * draw(st.integers(0, 11)) + draw(st.integers(5, 59)), 24 * 60 - 1)
    return time(*divmod(start, 60)), time(*divmod(end, 60))


# Mostly a real working span; now and then an empty or reversed one, to be ignored.
spans = st.one_of(real_spans(), st.tuples(wall_times, wall_times))


def oracle_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """UTC instant of a wall time, by brute force: first occurrence, or the gap's end."""
    naive = datetime.combine(day, wall)
    readings = sorted(naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
    valid = [u for u in readings if u.astimezone(tz).replace(tzinfo=None) == naive]
    if valid:
        return valid[0]
    moment = readings[0]  # before the change; walk to the first instant reading >= naive
    while moment.astimezone(tz).replace(tzinfo=None) < naive:
        moment += MIN
    return moment


def oracle_intervals(day: date, tz: ZoneInfo, weekly, overrides) -> list[tuple[datetime, datetime]]:
    pairs = overrides.get(day, [(w.start, w.end) for w in weekly if w.weekday == day.weekday()])
    return [(oracle_instant(day, a, tz), oracle_instant(day, b, tz)) for a, b in pairs if a < b]


def span(draw, max_hours: int) -> timedelta:
    """Up to `max_hours` and change; hours and minutes apart, as Hypothesis favours small ints."""
    return HOUR * draw(st.integers(0, max_hours)) + MIN * draw(st.integers(0, 59))


@st.composite
def scenarios(draw, *, simple: bool = False) -> dict:
    """Keyword arguments for free_slots; `simple` drops busy spans, cap, notice and horizon."""
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    anchor = draw(
        st.one_of(st.sampled_from(DST_DAYS), st.dates(date(2026, 1, 1), date(2026, 12, 31)))
    )
    base = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
    start = base - 12 * HOUR + span(draw, 23)
    end = start + span(draw, 72)
    days = [anchor + timedelta(days=n) for n in range(-2, 5)]
    # Only weekdays the search may cover: hours on the others would change nothing.
    weekday = st.sampled_from([d.weekday() for d in days[1:5]])
    windows = st.builds(lambda day, pair: Window(day, *pair), weekday, spans)
    params = {
        "tz": tz,
        "weekly": draw(st.lists(windows, min_size=1, max_size=8)),
        "overrides": draw(
            st.dictionaries(st.sampled_from(days), st.lists(spans, max_size=3), max_size=2)
        ),
        # Sometimes in the clinic's zone, to show the bounds are instants, not wall times.
        "start": start.astimezone(tz) if draw(st.booleans()) else start,
        "end": end.astimezone(tz) if draw(st.booleans()) else end,
    }
    if simple:
        return params | {
            "busy": [],
            "booked_per_day": {},
            "rules": rules(
                duration=draw(five_minutes), step=draw(five_minutes), horizon=DAY * 3650
            ),
            "now": start - DAY,
        }
    # Around the search range, often overlapping or nested in one another.
    busy_start = st.builds(
        lambda h, m: start - 6 * HOUR + h * HOUR + m * MIN, st.integers(0, 84), st.integers(0, 59)
    )
    busy_length = st.builds(lambda h, m: h * HOUR + m * MIN, st.integers(0, 8), st.integers(1, 59))
    busy_span = st.builds(lambda a, length: Interval(a, a + length), busy_start, busy_length)
    slot_rules = SlotRules(
        duration=draw(five_minutes),
        buffer_before=5 * MIN * draw(st.integers(0, 12)),
        buffer_after=5 * MIN * draw(st.integers(0, 12)),
        step=draw(five_minutes.filter(lambda d: d <= 2 * HOUR)),
        min_notice=span(draw, 24),
        horizon=span(draw, 8 * 24) if draw(st.booleans()) else 60 * DAY,
        daily_cap=draw(st.none() | st.integers(0, 4)),
    )
    return params | {
        "busy": draw(st.lists(busy_span, max_size=12)),
        "booked_per_day": draw(st.dictionaries(st.sampled_from(days), st.integers(0, 4))),
        "rules": slot_rules,
        # Mostly before the search starts (as in use), sometimes inside it.
        "now": start - span(draw, 48) + span(draw, 12),
    }


PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(scenarios())
def test_property_occupied_span_meets_no_busy_interval(params):
    r = params["rules"]
    for slot in free_slots(**params):
        occupied = (utc(slot.start) - r.buffer_before, utc(slot.end) + r.buffer_after)
        assert (utc(slot.occupied(r).start), utc(slot.occupied(r).end)) == occupied
        for busy in params["busy"]:
            assert max(occupied[0], utc(busy.start)) >= min(occupied[1], utc(busy.end))


@PROPERTY
@given(scenarios())
def test_property_slot_lies_within_one_working_interval_of_its_day(params):
    tz, duration = params["tz"], params["rules"].duration
    for slot in free_slots(**params):
        start = utc(slot.start)
        day = slot.start.astimezone(tz).date()
        intervals = oracle_intervals(day, tz, params["weekly"], params["overrides"])
        assert any(a <= start and start + duration <= b for a, b in intervals)


@PROPERTY
@given(scenarios())
def test_property_notice_horizon_and_search_range(params):
    r, now = params["rules"], utc(params["now"])
    for slot in free_slots(**params):
        start = utc(slot.start)
        assert now + r.min_notice <= start <= now + r.horizon
        assert utc(params["start"]) <= start < utc(params["end"])


@PROPERTY
@given(scenarios())
def test_property_days_at_the_cap_have_no_slots(params):
    cap, booked = params["rules"].daily_cap, params["booked_per_day"]
    for slot in free_slots(**params):
        assert cap is None or booked.get(slot.start.astimezone(params["tz"]).date(), 0) < cap


@PROPERTY
@given(scenarios())
def test_property_sorted_unique_exact_duration_in_the_clinic_zone(params):
    tz = params["tz"]
    slots = free_slots(**params)
    starts = [utc(s.start) for s in slots]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    for slot in slots:
        assert utc(slot.end) - utc(slot.start) == params["rules"].duration
        for moment in (slot.start, slot.end):
            # The zone's own reading of the instant: wall time, offset and fold all canonical.
            canonical = utc(moment).astimezone(tz)
            assert moment.tzinfo is tz
            assert (moment.replace(tzinfo=None), moment.utcoffset(), moment.fold) == (
                canonical.replace(tzinfo=None),
                canonical.utcoffset(),
                canonical.fold,
            )


@PROPERTY
@given(scenarios(simple=True))
def test_property_every_fitting_grid_point_is_offered_when_nothing_blocks(params):
    tz, r = params["tz"], params["rules"]
    lo, hi = utc(params["start"]), utc(params["end"])
    expected = set()
    day = lo.astimezone(tz).date() - DAY
    while day <= hi.astimezone(tz).date() + DAY:
        for a, b in oracle_intervals(day, tz, params["weekly"], params["overrides"]):
            moment = a
            while moment + r.duration <= b:
                if lo <= moment < hi:
                    expected.add(moment)
                moment += r.step
        day += DAY
    offered = [utc(s.start) for s in free_slots(**params)]
    assert offered == sorted(expected)
