"""The zero-setup SQLite database refuses double bookings too, under real concurrency."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from clinic.extensions import db
from clinic.scheduling.models import Appointment
from tests.scheduling.test_booking_api import (
    _exactly_one_of_32_wins,
    _one_slot_for_32_patients,
    _overlapping_spans_of_4_lengths,
    _the_database_alone_lets_one_of_32_in,
)


def _token(app, patient_id):
    from clinic.tokens import make_token

    with app.test_request_context():
        return make_token("booking", {"request_id": None, "patient_id": patient_id})


def _tokens(app):
    return lambda patient_id: _token(app, patient_id)


def test_32_simultaneous_bookings_on_sqlite(sqlite_app):
    schedule = sqlite_app.schedule
    bodies = _one_slot_for_32_patients(schedule, _tokens(sqlite_app), schedule["providers"][0])
    _exactly_one_of_32_wins(sqlite_app, bodies)
    with sqlite_app.app_context():
        assert len(db.session.scalars(select(Appointment)).all()) == 1


def test_sqlite_trigger_refuses_an_overlap_written_behind_the_app(sqlite_app):
    """Even SQL that skips the service's checks can't double-book."""
    schedule = sqlite_app.schedule
    client = sqlite_app.test_client()
    body = {
        "booking_token": _token(sqlite_app, schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T10:00:00-05:00",
    }
    assert client.post("/api/v1/appointments", json=body).status_code == 201
    with sqlite_app.app_context():
        with pytest.raises(Exception, match="slot_unavailable"):
            db.session.execute(
                text(
                    "INSERT INTO appointment (patient_id, provider_id, location_id, "
                    "appointment_type_id, status, start_at, end_at, occupied_start, occupied_end, "
                    "sequence, source, created_at, updated_at) SELECT patient_id, provider_id, "
                    "location_id, appointment_type_id, 'booked', start_at, end_at, occupied_start, "
                    "occupied_end, 0, 'staff', created_at, updated_at FROM appointment"
                )
            )
        db.session.rollback()
        # a cancelled appointment frees the time
        db.session.execute(text("UPDATE appointment SET status = 'cancelled'"))
        db.session.commit()
    assert (
        client.post(
            "/api/v1/appointments",
            json=dict(body, booking_token=_token(sqlite_app, schedule["patients"][1])),
        ).status_code
        == 201
    )


def _staff_headers(app) -> dict:
    from datetime import UTC, datetime

    from clinic.staff import services

    with app.app_context():
        user = services.create_staff(
            "desk@clinic.test", "front_desk", "a long enough password", now=datetime.now(UTC)
        )
        token = services.create_api_token(user, now=datetime.now(UTC))
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_overlapping_slots_of_different_lengths_on_sqlite(sqlite_app):
    schedule = sqlite_app.schedule
    bodies = _overlapping_spans_of_4_lengths(schedule, schedule["providers"][1])
    _exactly_one_of_32_wins(sqlite_app, bodies, _staff_headers(sqlite_app))
    with sqlite_app.app_context():
        assert len(db.session.scalars(select(Appointment)).all()) == 1


@pytest.mark.parametrize("spans", ["one-slot", "overlapping-lengths"])
def test_the_sqlite_trigger_alone_refuses_31_of_32_simultaneous_bookings(
    sqlite_app, monkeypatch, spans
):
    """BEGIN IMMEDIATE lines the 32 up, but with the app's overlap check blind each one after
    the first still reads the time as free and inserts: only the trigger refuses them."""
    schedule = sqlite_app.schedule
    if spans == "one-slot":
        bodies = _one_slot_for_32_patients(schedule, _tokens(sqlite_app), schedule["providers"][0])
        headers = None
    else:
        bodies = _overlapping_spans_of_4_lengths(schedule, schedule["providers"][1])
        headers = _staff_headers(sqlite_app)
    _the_database_alone_lets_one_of_32_in(sqlite_app, bodies, monkeypatch, headers)
    with sqlite_app.app_context():
        assert len(db.session.scalars(select(Appointment)).all()) == 1


def test_reschedule_racing_a_booking_on_sqlite(sqlite_app):
    import threading

    schedule = sqlite_app.schedule
    headers = _staff_headers(sqlite_app)
    provider = schedule["providers"][0]
    existing = (
        sqlite_app.test_client()
        .post(
            "/api/v1/appointments",
            headers=headers,
            json={
                "patient_id": schedule["patients"][0],
                "appointment_type": "consultation",
                "provider_id": provider,
                "start": "2026-11-30T08:00:00-05:00",
            },
        )
        .get_json()
    )
    target = "2026-11-30T14:00:00-05:00"
    barrier = threading.Barrier(2)
    results = {}

    def move():
        client = sqlite_app.test_client()
        barrier.wait()
        results["move"] = client.post(
            f"/api/v1/appointments/{existing['id']}/reschedule",
            headers=headers,
            json={"start": target},
        ).status_code

    def book():
        client = sqlite_app.test_client()
        barrier.wait()
        results["book"] = client.post(
            "/api/v1/appointments",
            json={
                "booking_token": _token(sqlite_app, schedule["patients"][1]),
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
    # The database agrees with the answers: exactly one appointment holds 2 PM, the winner's.
    with sqlite_app.app_context():
        rows = db.session.scalars(select(Appointment).order_by(Appointment.id)).all()
        at_two = [a for a in rows if a.start_at.isoformat() == "2026-11-30T19:00:00+00:00"]
        assert len(at_two) == 1 and at_two[0].status == "booked"
        moved = db.session.get(Appointment, existing["id"])
        if results["move"] == 200:
            assert len(rows) == 1 and at_two[0].id == existing["id"] and moved.sequence == 1
        else:
            assert len(rows) == 2 and at_two[0].patient_id == schedule["patients"][1]
            assert moved.start_at.isoformat() == "2026-11-30T13:00:00+00:00"
            assert moved.sequence == 0


def test_staff_logged_in_in_the_same_browser_can_open_patient_links_on_sqlite(sqlite_app):
    """A staff browser opening a patient's booking or manage link, a feed or the home page:
    the staff user is loaded in its own connection, which on SQLite must begin before the
    request's own transaction takes the write lock (it used to wait for its own request's
    lock for 30 s, and the page was a 500)."""
    from urllib.parse import urlsplit

    from clinic.staff import services
    from tests.conftest import FIXED_NOW, STAFF_PASSWORD

    schedule = sqlite_app.schedule
    with sqlite_app.app_context():
        services.create_staff("desk@clinic.test", "front_desk", STAFF_PASSWORD, now=FIXED_NOW)
        db.session.commit()
    client = sqlite_app.test_client()
    login = {"email": "desk@clinic.test", "password": STAFF_PASSWORD}
    assert client.post("/staff/login", data=login).status_code == 302
    booked = client.post(
        "/api/v1/appointments",
        json={
            "booking_token": _token(sqlite_app, schedule["patients"][0]),
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][0],
            "start": "2026-11-25T10:00:00-05:00",
        },
    )
    assert booked.status_code == 201
    pages = {
        urlsplit(booked.get_json()["manage_url"]).path: 200,
        f"/book/{_token(sqlite_app, schedule['patients'][1])}": 200,
        "/calendar/not-a-feed.ics": 404,
        "/": 200,
    }
    for path, status in pages.items():
        response = client.get(path)
        assert response.status_code == status, path
    assert client.get("/staff/calendar/day").status_code == 200  # still logged in
