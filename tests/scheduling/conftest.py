"""A small clinic schedule: one location, two providers, the default appointment types."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from clinic.extensions import db
from clinic.models import Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling.models import Appointment, AppointmentType, Provider

NY = ZoneInfo("America/New_York")


def build_schedule() -> dict:
    """Weekdays 08:00-12:00 and 13:00-17:00 for two providers (call inside an app context)."""
    from clinic.models import Patient
    from clinic.scheduling import services
    from clinic.scheduling.models import Location, Provider, ProviderHours

    location = Location(
        name="Main Street",
        address_line1="120 Main Street",
        city="Springfield",
        state="MA",
        zip="01103",
        phone="(555) 010-0100",
        timezone="America/New_York",
    )
    providers = []
    for name in ("Dr. Anika Patel", "Dr. Thomas Brennan"):
        provider = Provider(name=name, title="MD", feed_token=services.new_feed_token())
        for weekday in range(7):
            provider.hours.append(
                ProviderHours(
                    location=location, weekday=weekday, start_time=time(8), end_time=time(12)
                )
            )
            provider.hours.append(
                ProviderHours(
                    location=location, weekday=weekday, start_time=time(13), end_time=time(17)
                )
            )
        providers.append(provider)
    db.session.add_all([location, *providers])
    types = {t.code: t for t in services.install_default_types()}
    patients = []
    for i in range(40):
        patients.append(
            Patient(
                first_name=f"Pat{i}",
                last_name="Test",
                date_of_birth=__import__("datetime").date(1950, 1, 1),
                email=f"pat{i}@example.com",
                preferred_contact="email",
            )
        )
    db.session.add_all(patients)
    db.session.commit()
    return {
        "location": location.id,
        "providers": [p.id for p in providers],
        "types": {code: t.id for code, t in types.items()},
        "patients": [p.id for p in patients],
    }


def appointment_audit_events() -> list:
    """The audit events about appointments, oldest first (call inside an app context)."""
    from sqlalchemy import select

    from clinic.models import AuditEvent

    return db.session.scalars(
        select(AuditEvent).where(AuditEvent.resource_type == "appointment").order_by(AuditEvent.id)
    ).all()


@pytest.fixture
def schedule(app):
    with app.app_context():
        return build_schedule()


@pytest.fixture
def book(app, schedule, make_staff):
    """Book through the service as a staff member (no notice, any working time)."""
    staff_id = make_staff("physician", "scheduler@clinic.test")

    def do(start: datetime, *, provider=0, patient=0, code="consultation", status=None) -> int:
        with app.app_context():
            appointment = services.book_appointment(
                db.session.get(Patient, schedule["patients"][patient]),
                db.session.get(AppointmentType, schedule["types"][code]),
                db.session.get(Provider, schedule["providers"][provider]),
                start,
                # a visit of past days was booked while it was still ahead
                now=min(datetime(2026, 11, 24, 15, tzinfo=UTC), start - timedelta(days=1)),
                actor=db.session.get(StaffUser, staff_id),
                source="staff",
            )
            if status:
                appointment.status = status
            db.session.commit()
            return appointment.id

    return do


def staff_booking(schedule, patient=0, start="2026-11-26T09:00:00-05:00", **extra) -> dict:
    """A staff API booking's body: a consultation with the first provider."""
    return {
        "patient_id": schedule["patients"][patient],
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": start,
        **extra,
    }


def patient_booking(schedule, booking_token, patient: int = 0, start: str = "") -> dict:
    """A patient's booking body (their token): a consultation with the first provider."""
    return {
        "booking_token": booking_token(schedule["patients"][patient]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": start or "2026-11-25T09:00:00-05:00",
    }


def get_appointment(app, appointment_id: int) -> Appointment:
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        db.session.expunge(appointment)
        return appointment


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.fixture
def booking_token(app):
    from clinic.tokens import make_token

    def make(patient_id: int, request_id: int | None = None) -> str:
        with app.test_request_context():
            return make_token("booking", {"request_id": request_id, "patient_id": patient_id})

    return make


@pytest.fixture
def staff_token(app, make_staff):
    from datetime import UTC, datetime

    from clinic.models import StaffUser
    from clinic.staff import services

    def make(role: str = "front_desk") -> dict:
        user_id = make_staff(role, f"{role}-api@clinic.test")
        with app.app_context():
            token = services.create_api_token(
                db.session.get(StaffUser, user_id), now=datetime.now(UTC)
            )
            db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make


def wide_pool_options() -> dict:
    """The app's engine options with a pool that lets every thread of a 32-way race hold a
    connection at once (the default, 5 + 10 overflow, lets 15 transactions in at a time)."""
    from clinic.config import from_environment

    return from_environment()["SQLALCHEMY_ENGINE_OPTIONS"] | {"pool_size": 40, "max_overflow": 0}


@pytest.fixture(scope="session")
def race_app(app, database_url, smtp_server):
    """The app again, on the same PostgreSQL database, with the wide pool: for the races of
    32 requests. (Depending on ``app`` keeps the schema built and the tables emptied.)"""
    from clinic import create_app
    from tests.conftest import dispose, make_test_config

    application = create_app(
        make_test_config(
            database_url, smtp_server.port, SQLALCHEMY_ENGINE_OPTIONS=wide_pool_options()
        )
    )
    yield application
    dispose(application)


def blind_the_overlap_check(monkeypatch) -> None:
    """Make the app's own check see every time as free, for the slots offered to patients and
    for staff bookings alike (both ask ``_busy``): only the database's guard is left."""
    monkeypatch.setattr(services, "_busy", lambda *args, **kwargs: [])


class ConnectionsInUse:
    """The number of an app's pooled connections checked out, now and at most."""

    def __init__(self):
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def checked_out(self, *_):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def checked_in(self, *_):
        with self._lock:
            self.now -= 1


@contextmanager
def connections_in_use(app):
    """Count the app's connections in use at once while the block runs (``.peak``)."""
    with app.app_context():
        engine = db.engine
    count = ConnectionsInUse()
    event.listen(engine, "checkout", count.checked_out)
    event.listen(engine, "checkin", count.checked_in)
    try:
        yield count
    finally:
        event.remove(engine, "checkout", count.checked_out)
        event.remove(engine, "checkin", count.checked_in)


@pytest.fixture
def sqlite_app(tmp_path, database_url, smtp_server):
    """The app on SQLite (the zero-setup default), migrated, with the clinic of build_schedule
    as ``app.schedule``; with the wide pool, for the races of 32 requests."""
    from flask_migrate import upgrade

    from clinic import create_app
    from tests.conftest import ROOT, dispose, make_test_config

    application = create_app(
        make_test_config(
            database_url,
            smtp_server.port,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'clinic.sqlite3'}",
            SQLALCHEMY_ENGINE_OPTIONS=wide_pool_options(),
        )
    )
    with application.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        application.schedule = build_schedule()
    yield application
    dispose(application)
