"""Slots and appointments over the JSON API, on PostgreSQL, with real concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.scheduling.models import Appointment, AppointmentStatus
from tests.conftest import clock_at
from tests.scheduling.conftest import (
    appointment_audit_events,
    blind_the_overlap_check,
    connections_in_use,
    get_appointment,
    staff_booking,
)

NY = ZoneInfo("America/New_York")
SLOTS = "/api/v1/slots"
BOOK = "/api/v1/appointments"


def slots(client, **params):
    params.setdefault("appointment_type", "consultation")
    response = client.get(SLOTS, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_types_and_providers(client, schedule):
    types = client.get("/api/v1/appointment-types").get_json()
    assert [t["code"] for t in types] == [
        "consultation",
        "procedure",
        "post_procedure_visit",
        "phone_check_in",
    ]
    providers = client.get("/api/v1/providers").get_json()
    assert [p["name"] for p in providers] == ["Dr. Anika Patel", "Dr. Thomas Brennan"]


def test_slots_in_clinic_local_time(client, schedule):
    found = slots(
        client, start="2026-11-25", end="2026-11-25", provider_id=schedule["providers"][0]
    )
    starts = [s["start"] for s in found]
    # now = Tue 10:00; 12 h notice; 45 min + 15 min buffer on a 15-minute grid, lunch 12-13
    assert starts[0] == "2026-11-25T08:00:00-05:00"
    assert "2026-11-25T11:00:00-05:00" in starts and "2026-11-25T11:15:00-05:00" in starts
    assert "2026-11-25T11:30:00-05:00" not in starts  # would end after noon
    assert starts[-1] == "2026-11-25T16:15:00-05:00"
    assert all(s["end"] > s["start"] for s in found)
    assert {s["provider_id"] for s in found} == {schedule["providers"][0]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-11-25"}, "end"),
        ({"start": "25/11/2026", "end": "2026-11-26"}, "start"),
        ({"start": "2026-11-25T09:00:00", "end": "2026-11-26"}, "start"),
        ({"start": "2026-11-26", "end": "2026-11-25"}, "end"),
        ({"start": "2026-11-25", "end": "2027-11-25"}, "end"),
        (
            {"start": "2026-11-25", "end": "2026-11-26", "appointment_type": "massage"},
            "appointment_type",
        ),
        ({"start": "2026-11-25", "end": "2026-11-26", "provider_id": "x"}, "provider_id"),
        ({"start": "2026-11-25", "end": "2026-11-26", "provider_id": "999"}, "provider_id"),
    ],
)
def test_slot_query_errors(client, schedule, params, field):
    params.setdefault("appointment_type", "consultation")
    response = client.get(SLOTS, query_string=params)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_an_offset_whose_plus_was_not_encoded_still_reads(client, schedule):
    """A "+" left unencoded in a query string arrives as a space: the offset still counts."""
    plain = {"appointment_type": "consultation", "provider_id": schedule["providers"][0]}
    encoded = client.get(
        SLOTS, query_string=plain | {"start": "2026-11-25T14:00:00+00:00", "end": "2026-11-26"}
    )
    provider = schedule["providers"][0]
    raw = client.get(
        f"{SLOTS}?appointment_type=consultation&provider_id={provider}"
        "&start=2026-11-25T14:00:00+00:00&end=2026-11-26"
    )
    assert encoded.status_code == raw.status_code == 200, raw.get_json()
    assert raw.get_json() == encoded.get_json() and raw.get_json()


def test_a_booking_with_several_bad_fields_names_them_all(app, client, schedule):
    """One 422 lists every field to fix (the token, type, provider and start), and nothing is
    stored."""
    response = client.post(
        BOOK,
        json={
            "booking_token": "not-a-token",
            "appointment_type": "massage",
            "provider_id": "x",
            "start": "2026-11-25",
        },
    )
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == {"booking_token", "appointment_type", "provider_id", "start"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 0


def test_patient_books_with_token_and_slot_disappears(app, client, schedule, booking_token):
    provider = schedule["providers"][0]
    first = slots(client, start="2026-11-25", end="2026-11-25", provider_id=provider)[0]
    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": provider,
        "start": first["start"],
    }
    response = client.post(BOOK, json=body)
    assert response.status_code == 201, response.get_json()
    booked = response.get_json()
    assert booked["status"] == "booked" and booked["start"] == first["start"]
    assert booked["end"] == "2026-11-25T08:45:00-05:00"
    assert booked["manage_url"].startswith("http://clinic.test/appointments/manage/")
    after = [
        s["start"]
        for s in slots(client, start="2026-11-25", end="2026-11-25", provider_id=provider)
    ]
    # 08:00 and everything overlapping 08:00-09:00 (45 min + 15 min buffer) is gone
    assert after[0] == "2026-11-25T09:00:00-05:00"
    again = client.post(BOOK, json=dict(body, booking_token=booking_token(schedule["patients"][1])))
    assert again.status_code == 409 and again.get_json() == {"error": "slot_unavailable"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"booking_token": "forged"}, "booking_token"),
        ({"appointment_type": "procedure"}, "appointment_type"),  # staff-only type
        ({"provider_id": 999}, "provider_id"),
        ({"provider_id": "1"}, "provider_id"),
        ({"start": "tomorrow"}, "start"),
        ({"start": None}, "start"),
    ],
)
def test_booking_errors(client, schedule, booking_token, change, field):
    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T08:00:00-05:00",
        **change,
    }
    response = client.post(BOOK, json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize(
    "start",
    [
        "2026-11-24T11:00:00-05:00",  # inside the 12-hour notice
        "2026-11-25T08:05:00-05:00",  # off the grid
        "2026-11-25T12:00:00-05:00",  # lunch
        "2027-06-01T09:00:00-04:00",  # beyond the 90-day horizon
    ],
)
def test_patients_get_offered_slots_only(client, schedule, booking_token, start):
    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": start,
    }
    assert client.post(BOOK, json=body).status_code == 409


def test_idempotency_key_replays_the_first_answer(app, client, schedule, booking_token):
    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T09:00:00-05:00",
    }
    headers = {"Idempotency-Key": "retry-me-1"}
    first = client.post(BOOK, json=body, headers=headers)
    second = client.post(BOOK, json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    other = client.post(BOOK, json=dict(body, start="2026-11-25T10:00:00-05:00"), headers=headers)
    assert other.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 1


@pytest.mark.parametrize(
    ("status", "early", "in_time"),
    [
        # arrived and checked in: from the visit's day (New York's), not before
        ("arrived", "2026-11-25T23:59:00-05:00", "2026-11-26T00:00:00-05:00"),
        ("checked-in", "2026-11-25T23:59:00-05:00", "2026-11-26T07:00:00-05:00"),
        # no-show: from its start
        ("noshow", "2026-11-26T08:59:00-05:00", "2026-11-26T09:00:00-05:00"),
    ],
)
def test_desk_statuses_wait_for_the_visit(
    app, client, schedule, staff_token, status, early, in_time
):
    """Marking a future appointment by mistake would free its time without a word to the
    patient: too early is a 422 that says when, and nothing changes."""
    headers = staff_token("front_desk")
    booked = client.post(BOOK, headers=headers, json=staff_booking(schedule))
    assert booked.status_code == 201, booked.get_json()
    url = f"{BOOK}/{booked.get_json()['id']}/status"
    clock_at(app, early)
    refused = client.post(url, headers=headers, json={"status": status})
    assert refused.status_code == 422
    said = {"checked-in": "checked in", "noshow": "no-show"}.get(status, status)
    assert f"Mark an appointment {said}" in refused.get_json()["errors"]["status"][0]
    assert get_appointment(app, booked.get_json()["id"]).status == "booked"
    clock_at(app, in_time)
    done = client.post(url, headers=headers, json={"status": status})
    assert done.status_code == 200 and done.get_json()["status"] == status


def test_a_patient_seen_early_is_done_early(app, client, schedule, staff_token):
    """In at 8:10 for a 9:00 visit, seen at once: fulfilled at 8:40, before its start time."""
    headers = staff_token("front_desk")
    booked = client.post(BOOK, headers=headers, json=staff_booking(schedule))
    url = f"{BOOK}/{booked.get_json()['id']}/status"
    clock_at(app, "2026-11-26T08:10:00-05:00")
    assert client.post(url, headers=headers, json={"status": "arrived"}).status_code == 200
    clock_at(app, "2026-11-26T08:40:00-05:00")
    done = client.post(url, headers=headers, json={"status": "fulfilled"})
    assert done.status_code == 200 and done.get_json()["status"] == "fulfilled"


def test_staff_book_reschedule_cancel_and_status(app, client, schedule, staff_token):
    headers = staff_token("front_desk")
    provider = schedule["providers"][1]
    response = client.post(
        BOOK,
        headers=headers,
        json={
            "patient_id": schedule["patients"][0],
            "appointment_type": "procedure",
            "provider_id": provider,
            "start": "2026-11-24T14:10:00-05:00",
        },
    )  # off-grid is fine
    assert response.status_code == 201, response.get_json()
    appointment = response.get_json()
    # the 201 shape of PRODUCT.md, a staff booking too: front desk passes the link on
    assert set(appointment) >= {"id", "status", "start", "end", "provider_id", "manage_url"}
    manage_path = appointment["manage_url"].removeprefix("http://clinic.test")
    assert client.get(manage_path).status_code == 200
    url = f"{BOOK}/{appointment['id']}"
    moved = client.post(
        f"{url}/reschedule", headers=headers, json={"start": "2026-11-26T09:00:00-05:00"}
    )
    assert moved.status_code == 200 and moved.get_json()["start"] == "2026-11-26T09:00:00-05:00"
    assert "manage_url" not in moved.get_json()  # only in the booking's answer
    bad = client.post(f"{url}/status", headers=headers, json={"status": "fulfilled"})
    assert bad.status_code == 409 and bad.get_json()["error"] == "not_allowed"
    clock_at(app, "2026-11-26T08:55:00-05:00")  # the patient comes in for it
    assert (
        client.post(f"{url}/status", headers=headers, json={"status": "arrived"}).status_code == 200
    )
    assert client.post(f"{url}/cancel", headers=headers, json={}).status_code == 422
    done = client.post(f"{url}/cancel", headers=headers, json={"reason": "Feeling unwell"})
    assert done.status_code == 200 and done.get_json()["status"] == "cancelled"
    with app.app_context():
        row = db.session.get(Appointment, appointment["id"])
        assert row.cancel_reason == "Feeling unwell" and row.cancelled_by_id is not None
        assert row.sequence == 2  # bumped by the move and by the cancellation
    listed = client.get(
        BOOK, headers=headers, query_string={"start": "2026-11-20", "end": "2026-11-30"}
    ).get_json()
    assert [a["status"] for a in listed] == ["cancelled"]


def test_staff_api_needs_a_token_and_a_role(client, schedule, staff_token):
    assert (
        client.get(BOOK, query_string={"start": "2026-11-20", "end": "2026-11-30"}).status_code
        == 401
    )
    billing = staff_token("billing")
    response = client.post(
        BOOK,
        headers=billing,
        json={
            "patient_id": schedule["patients"][0],
            "appointment_type": "procedure",
            "provider_id": schedule["providers"][0],
            "start": "2026-11-25T09:00:00-05:00",
        },
    )
    assert response.status_code == 403
    bogus = client.post(BOOK, headers={"Authorization": "Bearer nope"}, json={})
    assert bogus.status_code == 401


def test_staff_api_keeps_the_daily_cap(app, client, schedule, staff_token):
    """Staff bookings and moves skip the notice and the grid, not the type's per-day cap
    (counted per provider and day, without the appointment being moved)."""
    from clinic.scheduling.models import AppointmentType

    with app.app_context():
        db.session.get(AppointmentType, schedule["types"]["procedure"]).daily_cap = 2
        db.session.commit()
    headers = staff_token("front_desk")
    patel, brennan = schedule["providers"]

    def book(start, provider=patel, patient=0):
        body = {
            "patient_id": schedule["patients"][patient],
            "appointment_type": "procedure",
            "provider_id": provider,
            "start": start,
        }
        return client.post(BOOK, headers=headers, json=body)

    first = book("2026-12-15T08:00:00-05:00")
    assert first.status_code == 201
    assert book("2026-12-15T10:00:00-05:00", patient=1).status_code == 201
    third = book("2026-12-15T13:30:00-05:00", patient=2)
    assert third.status_code == 409
    assert third.get_json() == {
        "error": "slot_unavailable",
        "code": "daily_cap_reached",
        "detail": third.get_json()["detail"],
    }
    assert "cap of 2" in third.get_json()["detail"]
    assert book("2026-12-15T13:30:00-05:00", provider=brennan, patient=2).status_code == 201
    next_day = book("2026-12-16T08:00:00-05:00", patient=3)
    assert next_day.status_code == 201
    url = f"{BOOK}/{next_day.get_json()['id']}/reschedule"
    onto = client.post(url, headers=headers, json={"start": "2026-12-15T15:00:00-05:00"})
    assert onto.status_code == 409
    own = f"{BOOK}/{first.get_json()['id']}/reschedule"
    within = client.post(own, headers=headers, json={"start": "2026-12-15T15:00:00-05:00"})
    assert within.status_code == 200


@pytest.mark.parametrize(
    ("url", "value"),
    [
        (SLOTS, "\u00b2"),  # "\u00b2".isdigit() is True, int("\u00b2") raises
        (BOOK, "\u00b2"),
        (BOOK, "9" * 20),  # past the int column
        (BOOK, "abc"),  # was silently ignored: the whole list came back
    ],
)
def test_a_provider_id_that_is_not_an_id_is_a_field_error(
    client, schedule, staff_token, url, value
):
    query = {"start": "2026-11-25", "end": "2026-11-25", "provider_id": value}
    response = client.get(
        url,
        headers=staff_token("front_desk"),
        query_string=query | ({"appointment_type": "consultation"} if url == SLOTS else {}),
    )
    assert response.status_code == 422
    assert response.get_json() == {"errors": {"provider_id": ["Must be a provider id."]}}


def _race(app, bodies, headers=None) -> list[int]:
    """POST every body at the same moment from its own thread; the status codes."""
    barrier = threading.Barrier(len(bodies))
    codes: list[int] = [0] * len(bodies)

    def run(i):
        client = app.test_client()
        barrier.wait()
        codes[i] = client.post(BOOK, json=bodies[i], headers=headers or {}).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


# A 32-way race must have had this many requests in a transaction at one moment: more than
# the default pool's 15 (which would have queued the rest), near all 32.
AT_ONCE = 28


def _race_of_32(app, bodies, headers=None) -> list[int]:
    """``_race`` on an app with a pool for all 32 (``race_app``, ``sqlite_app``), checked to
    have been one: at least AT_ONCE requests held a database connection at the same time."""
    with connections_in_use(app) as in_use:
        codes = _race(app, bodies, headers)
    assert in_use.peak >= AT_ONCE, f"only {in_use.peak} requests were in at once"
    return codes


def _exactly_one_of_32_wins(app, bodies, headers=None) -> Appointment:
    """Race the 32 bookings (of one provider): one 201 and 31 409s, and the winner alone is
    stored as booked."""
    codes = _race_of_32(app, bodies, headers)
    assert sorted(codes) == [201] + [409] * 31, codes
    [winner] = _active(app, bodies[0]["provider_id"])
    return winner


def _the_database_alone_lets_one_of_32_in(app, bodies, monkeypatch, headers=None) -> None:
    """The app's own overlap check made blind (every request thinks the time is free): only
    the database's guard stands between the 32 bookings, and it lets exactly one in."""
    blind_the_overlap_check(monkeypatch)
    _exactly_one_of_32_wins(app, bodies, headers)


def _active(app, provider_id):
    with app.app_context():
        return db.session.scalars(
            select(Appointment).where(
                Appointment.provider_id == provider_id,
                Appointment.status == AppointmentStatus.BOOKED,
            )
        ).all()


def _one_slot_for_32_patients(schedule, booking_token, provider) -> list[dict]:
    """32 patients' bookings of one consultation (``booking_token``: patient id -> token)."""
    return [
        {
            "booking_token": booking_token(schedule["patients"][i]),
            "appointment_type": "consultation",
            "provider_id": provider,
            "start": "2026-11-25T10:00:00-05:00",
        }
        for i in range(32)
    ]


def _overlapping_spans_of_4_lengths(schedule, provider) -> list[dict]:
    """32 staff bookings (patient_id) of the four types, starting 09:00 to 09:15 on Friday
    27 November: all cover 09:15-09:30, buffers included."""
    kinds = ["procedure", "consultation", "post_procedure_visit", "phone_check_in"]
    return [
        {
            "patient_id": schedule["patients"][i],
            "appointment_type": kinds[i % 4],
            "provider_id": provider,
            "start": f"2026-11-27T09:{(i % 4) * 5:02d}:00-05:00",
        }
        for i in range(32)
    ]


def test_32_simultaneous_bookings_of_one_slot(race_app, schedule, booking_token):
    provider = schedule["providers"][0]
    _exactly_one_of_32_wins(race_app, _one_slot_for_32_patients(schedule, booking_token, provider))


@pytest.mark.parametrize("cap", [8, None], ids=["capped-type", "uncapped-type"])
def test_the_database_alone_refuses_31_of_32_simultaneous_bookings(
    race_app, schedule, booking_token, monkeypatch, cap
):
    """Only the exclusion constraint (23P01, or 40P01 on a deadlock) stands between them.
    Uncapped, they race to the insert together; capped, the per-type lock lines them up and
    each insert after the first hits the constraint."""
    from clinic.scheduling.models import AppointmentType

    with race_app.app_context():
        kind = db.session.scalars(select(AppointmentType).filter_by(code="consultation")).one()
        kind.daily_cap = cap
        db.session.commit()
    bodies = _one_slot_for_32_patients(schedule, booking_token, schedule["providers"][0])
    _the_database_alone_lets_one_of_32_in(race_app, bodies, monkeypatch)


def test_the_database_alone_refuses_31_of_32_overlapping_bookings_of_different_lengths(
    race_app, schedule, staff_token, monkeypatch
):
    """Overlapping spans of four lengths, not one slot: the constraint compares the occupied
    ranges, buffers included, whatever their types."""
    bodies = _overlapping_spans_of_4_lengths(schedule, schedule["providers"][1])
    _the_database_alone_lets_one_of_32_in(race_app, bodies, monkeypatch, staff_token("front_desk"))


@pytest.mark.parametrize("who", ["patients", "staff"])
def test_simultaneous_bookings_at_different_times_keep_the_daily_cap(
    app, client, schedule, booking_token, staff_token, who
):
    """One place left in the day: 8 bookings of 8 different free times of it at the same
    moment; exactly one gets it (the database guard alone only stops overlaps)."""
    from clinic.scheduling.models import AppointmentType

    provider = schedule["providers"][0]
    with app.app_context():
        kind = db.session.scalars(select(AppointmentType).filter_by(code="consultation")).one()
        kind.daily_cap = 1
        db.session.commit()
    query = {"appointment_type": "consultation", "provider_id": provider}
    day = {"start": "2026-11-25", "end": "2026-11-25"}
    offered = client.get(SLOTS, query_string=query | day).get_json()
    starts = [slot["start"] for slot in offered][:8]
    assert len(starts) == 8
    patients = schedule["patients"]
    bodies = [
        {"appointment_type": "consultation", "provider_id": provider, "start": start}
        | (
            {"booking_token": booking_token(patients[i])}
            if who == "patients"
            else {"patient_id": patients[i]}
        )
        for i, start in enumerate(starts)
    ]
    headers = staff_token("front_desk") if who == "staff" else None
    codes = _race(app, bodies, headers)
    assert sorted(codes) == [201] + [409] * 7
    assert len(_active(app, provider)) == 1


def test_overlapping_slots_of_different_lengths(race_app, schedule, staff_token):
    """Staff book 32 overlapping spans of different types: exactly one wins."""
    bodies = _overlapping_spans_of_4_lengths(schedule, schedule["providers"][1])
    winner = _exactly_one_of_32_wins(race_app, bodies, staff_token("front_desk"))
    assert winner.start_at.astimezone(NY).strftime("%H") == "09"  # whichever type won


def test_reschedule_racing_a_booking(app, schedule, staff_token, booking_token):
    headers = staff_token("nurse")
    provider = schedule["providers"][0]
    client = app.test_client()
    existing = client.post(
        BOOK,
        headers=headers,
        json={
            "patient_id": schedule["patients"][0],
            "appointment_type": "consultation",
            "provider_id": provider,
            "start": "2026-11-30T08:00:00-05:00",
        },
    ).get_json()
    target = "2026-11-30T14:00:00-05:00"
    barrier = threading.Barrier(2)
    results = {}

    def move():
        c = app.test_client()
        barrier.wait()
        results["move"] = c.post(
            f"{BOOK}/{existing['id']}/reschedule", headers=headers, json={"start": target}
        ).status_code

    def book():
        c = app.test_client()
        barrier.wait()
        results["book"] = c.post(
            BOOK,
            json={
                "booking_token": booking_token(schedule["patients"][1]),
                "appointment_type": "consultation",
                "provider_id": provider,
                "start": target,
            },
        ).status_code

    threads = [threading.Thread(target=move), threading.Thread(target=book)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results.values()) in ([200, 409], [201, 409]), results
    at_target = [
        a for a in _active(app, provider) if a.start_at == datetime(2026, 11, 30, 14, tzinfo=NY)
    ]
    assert len(at_target) == 1


def test_postgres_constraint_refuses_an_overlap_written_behind_the_app(
    app, client, schedule, booking_token
):
    from sqlalchemy import text

    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T10:00:00-05:00",
    }
    assert client.post(BOOK, json=body).status_code == 201
    with app.app_context():
        with pytest.raises(Exception, match="ex_appointment_no_double_booking"):
            db.session.execute(
                text(
                    "INSERT INTO appointment (patient_id, provider_id, location_id, "
                    "appointment_type_id, status, start_at, end_at, occupied_start, occupied_end, "
                    "sequence, source, created_at, updated_at) SELECT patient_id, provider_id, "
                    "location_id, appointment_type_id, 'booked', start_at + interval '50 minutes', "
                    "end_at + interval '50 minutes', occupied_start + interval '50 minutes', "
                    "occupied_end + interval '50 minutes', 0, 'staff', created_at, updated_at "
                    "FROM appointment"
                )
            )
        db.session.rollback()


def test_every_booking_change_is_audited_with_old_and_new_values(
    app, client, schedule, staff_token
):

    headers = staff_token("front_desk")
    created = client.post(
        BOOK,
        headers=headers,
        json={
            "patient_id": schedule["patients"][0],
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][0],
            "start": "2026-11-26T09:00:00-05:00",
        },
    ).get_json()
    url = f"{BOOK}/{created['id']}"
    client.post(
        f"{url}/reschedule",
        headers=headers,
        json={"start": "2026-11-26T10:00:00-05:00", "provider_id": schedule["providers"][1]},
    )
    client.post(f"{url}/cancel", headers=headers, json={"reason": "Patient asked"})
    with app.app_context():
        events = appointment_audit_events()
        assert [e.action for e in events] == ["create", "update", "update"]
        assert all(e.actor_role == "front_desk" and e.patient_id for e in events)
        location = db.session.get(Appointment, created["id"]).location_id
        assert events[1].reason == (
            f"from 2026-11-26T14:00:00+00:00 provider {schedule['providers'][0]} "
            f"location {location} to "
            f"2026-11-26T15:00:00+00:00 provider {schedule['providers'][1]} location {location}"
        )
        assert events[2].reason == "booked -> cancelled: Patient asked"


def test_staff_cannot_book_over_time_off(app, client, schedule, staff_token):
    from clinic.scheduling.models import TimeOff

    provider = schedule["providers"][0]
    with app.app_context():
        db.session.add(
            TimeOff(
                provider_id=provider,
                reason="Conference",
                start_at=datetime(2026, 11, 26, 14, tzinfo=UTC),
                end_at=datetime(2026, 11, 26, 17, tzinfo=UTC),
            )
        )
        db.session.commit()
    body = {
        "patient_id": schedule["patients"][0],
        "appointment_type": "phone_check_in",
        "provider_id": provider,
    }
    headers = staff_token("nurse")
    inside = client.post(BOOK, headers=headers, json=dict(body, start="2026-11-26T10:00:00-05:00"))
    assert inside.status_code == 409
    after = client.post(BOOK, headers=headers, json=dict(body, start="2026-11-26T13:00:00-05:00"))
    assert after.status_code == 201


def test_staff_cannot_book_at_a_closed_down_location(app, client, schedule, staff_token):
    """The slot search skips an inactive location; staff booking off the grid did not."""
    from clinic.scheduling.models import Location

    with app.app_context():
        db.session.get(Location, schedule["location"]).active = False
        db.session.commit()
    body = {
        "patient_id": schedule["patients"][0],
        "appointment_type": "phone_check_in",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-26T10:00:00-05:00",
    }
    response = client.post(BOOK, headers=staff_token("nurse"), json=body)
    assert response.status_code == 409
    assert _active(app, schedule["providers"][0]) == []


def test_idempotency_keys_are_per_caller(app, client, schedule, staff_token):
    headers = staff_token("front_desk")
    created = client.post(
        BOOK,
        headers=headers,
        json={
            "patient_id": schedule["patients"][0],
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][0],
            "start": "2026-11-26T09:00:00-05:00",
        },
    ).get_json()
    url = f"{BOOK}/{created['id']}/cancel"
    body = {"reason": "Patient asked"}
    first = client.post(url, headers=headers | {"Idempotency-Key": "k1"}, json=body)
    assert first.status_code == 200
    stranger = client.post(url, headers={"Idempotency-Key": "k1"}, json=body)
    assert stranger.status_code == 401 and "patient_id" not in (stranger.get_json() or {})
    replay = client.post(url, headers=headers | {"Idempotency-Key": "k1"}, json=body)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        (
            "get",
            SLOTS,
            {
                "query_string": {
                    "appointment_type": "consultation",
                    "start": "9999-12-31",
                    "end": "9999-12-31",
                }
            },
        ),
        (
            "get",
            SLOTS,
            {
                "query_string": {
                    "appointment_type": "consultation",
                    "start": "0001-01-01T00:00:00+00:00",
                    "end": "2026-12-01",
                }
            },
        ),
        (
            "get",
            SLOTS,
            {
                "query_string": {
                    "appointment_type": "consultation",
                    "start": "2026-12-01",
                    "end": "2026-12-02",
                    "provider_id": "9" * 20,
                }
            },
        ),
        (
            "post",
            BOOK,
            {
                "json": {
                    "booking_token": "x",
                    "appointment_type": "consultation",
                    "provider_id": 10**20,
                    "start": "9999-12-31T23:00:00+00:00",
                }
            },
        ),
        ("post", f"{BOOK}/{'9' * 20}/cancel", {"json": {"reason": "x"}}),
        ("get", "/book/x?from=9999-12-31", {}),
        ("get", "/staff/requests?page=99999999999999999999", {}),
    ],
)
def test_out_of_range_input_is_a_clear_error_not_a_500(client, schedule, method, url, kwargs):
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code in (302, 401, 404, 422), response.status_code


def test_lone_surrogates_are_refused(app, client):
    from tests.conftest import example_values

    response = client.post(
        "/api/v1/consultation-requests", json=example_values(first_name="A\ud800")
    )
    assert response.status_code == 422 and "first_name" in response.get_json()["errors"]


def test_patients_cannot_book_a_slot_that_runs_into_time_off(app, client, schedule, booking_token):
    """Time off starting after a slot's start but inside its span (45 min + 15 min buffer)
    takes the slot off offer, in the search and in the booking's own check."""
    from clinic.scheduling.models import TimeOff

    provider = schedule["providers"][0]
    with app.app_context():
        db.session.add(
            TimeOff(
                provider_id=provider,
                reason="Meeting",
                start_at=datetime(2026, 11, 25, 14, 30, tzinfo=UTC),  # 09:30 in New York
                end_at=datetime(2026, 11, 25, 15, 30, tzinfo=UTC),
            )
        )
        db.session.commit()
    day = {"start": "2026-11-25", "end": "2026-11-25", "provider_id": provider}
    offered = [s["start"] for s in slots(client, **day)]
    assert "2026-11-25T09:00:00-05:00" not in offered
    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": provider,
    }
    refused = client.post(BOOK, json=dict(body, start="2026-11-25T09:00:00-05:00"))
    assert refused.status_code == 409 and refused.get_json() == {"error": "slot_unavailable"}
    # the buffer after a 08:00 booking ends at 09:00, before the meeting: still bookable
    assert client.post(BOOK, json=dict(body, start="2026-11-25T08:00:00-05:00")).status_code == 201
