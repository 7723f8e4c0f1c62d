"""The zero-setup SQLite database refuses double bookings too, under real concurrency."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from clinic import create_app
from clinic.extensions import db
from clinic.scheduling.models import Appointment
from tests.conftest import ROOT, dispose, make_test_config
from tests.scheduling.conftest import build_schedule
from tests.scheduling.test_booking_api import _race


@pytest.fixture
def sqlite_app(tmp_path, database_url, smtp_server):
    from flask_migrate import upgrade

    application = create_app(
        make_test_config(
            database_url,
            smtp_server.port,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'clinic.sqlite3'}",
        )
    )
    with application.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        application.schedule = build_schedule()
    yield application
    dispose(application)


def _token(app, patient_id):
    from clinic.tokens import make_token

    with app.test_request_context():
        return make_token("booking", {"request_id": None, "patient_id": patient_id})


def test_32_simultaneous_bookings_on_sqlite(sqlite_app):
    schedule = sqlite_app.schedule
    bodies = [
        {
            "booking_token": _token(sqlite_app, schedule["patients"][i]),
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][0],
            "start": "2026-11-25T10:00:00-05:00",
        }
        for i in range(32)
    ]
    codes = _race(sqlite_app, bodies)
    assert sorted(codes) == [201] + [409] * 31
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
