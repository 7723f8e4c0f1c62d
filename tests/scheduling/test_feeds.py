"""A provider's iCalendar feed behind a secret URL, and rotating that URL from the back office."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta

import icalendar
import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.models import AuditEvent, Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)
from tests.conftest import FIXED_NOW

SLOT = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)  # Thu 09:00 in New York


@pytest.fixture
def booker(make_staff):
    return make_staff("nurse", "booker@clinic.test")


@pytest.fixture
def marguerite(app):
    with app.app_context():
        patient = Patient(
            first_name="Marguerite",
            last_name="Okonkwo-Vance",
            date_of_birth=date(1948, 3, 9),
            email="marguerite.ov@example.com",
            preferred_contact="email",
        )
        db.session.add(patient)
        db.session.commit()
        return patient.id


def book(app, actor_id, patient_id, provider_id, start, type_code="consultation") -> int:
    with app.app_context():
        appointment = services.book_appointment(
            db.session.get(Patient, patient_id),
            db.session.scalars(select(AppointmentType).filter_by(code=type_code)).one(),
            db.session.get(Provider, provider_id),
            start,
            now=min(FIXED_NOW, start - timedelta(days=1)),  # past visits were booked ahead
            actor=db.session.get(StaffUser, actor_id),
            source="staff",
        )
        db.session.commit()
        return appointment.id


def token_of(app, provider_id) -> str:
    with app.app_context():
        return db.session.get(Provider, provider_id).feed_token


def fetch(client, token):
    response = client.get(f"/calendar/{token}.ics")
    assert response.status_code == 200, response.data[:300]
    return response


def events(body: bytes) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def test_feed_has_the_providers_appointments_in_the_window(
    app, client, schedule, booker, marguerite
):
    patel, brennan = schedule["providers"]
    ids = [
        book(app, booker, marguerite, patel, SLOT),
        book(app, booker, schedule["patients"][0], patel, SLOT + timedelta(days=1)),
        book(app, booker, schedule["patients"][1], patel, SLOT - timedelta(days=20), "procedure"),
    ]
    book(app, booker, schedule["patients"][2], brennan, SLOT)  # the other provider
    book(app, booker, schedule["patients"][3], patel, SLOT - timedelta(days=40))  # too old
    book(app, booker, schedule["patients"][4], patel, SLOT + timedelta(days=185))  # too far

    response = fetch(client, token_of(app, patel))
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Cache-Control"] == "private, max-age=300"

    calendar = icalendar.Calendar.from_ical(response.data)
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["CALSCALE"]) == "GREGORIAN"
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["PRODID"]).startswith("-//")
    assert "Dr. Anika Patel" in str(calendar["X-WR-CALNAME"])
    assert str(calendar["X-WR-TIMEZONE"]) == "America/New_York"
    assert str(calendar["X-PUBLISHED-TTL"]) == "PT15M"
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT15M\r\n" in response.data

    found = events(response.data)
    assert sorted(found) == sorted(f"appointment-{i}@clinic.test" for i in ids)
    first = found[f"appointment-{ids[0]}@clinic.test"]
    assert first.decoded("DTSTART") == SLOT
    assert first.decoded("DTEND") == SLOT + timedelta(minutes=45)
    assert b"DTSTART:20261126T140000Z" in response.data  # UTC, no floating time, no TZID
    assert first.decoded("DTSTAMP") == FIXED_NOW
    assert first["SEQUENCE"] == 0
    assert str(first["STATUS"]) == "CONFIRMED"
    assert str(first["SUMMARY"]) == "New-patient consultation - M.O."
    assert str(first["LOCATION"]) == "Main Street, 120 Main Street, Springfield, MA 01103"
    procedure = found[f"appointment-{ids[2]}@clinic.test"]
    assert str(procedure["SUMMARY"]).startswith("Procedure - P.T.")


def test_only_initials_leave_the_clinic(app, client, schedule, booker, marguerite):
    patel = schedule["providers"][0]
    book(app, booker, marguerite, patel, SLOT)
    cancelled = book(app, booker, schedule["patients"][7], patel, SLOT + timedelta(hours=2))
    with app.app_context():
        services.cancel(
            db.session.get(Appointment, cancelled),
            "Sciatica flare, patient in hospital",
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, booker),
        )
        db.session.commit()

    body = fetch(client, token_of(app, patel)).data.decode()
    for secret in ("Marguerite", "Okonkwo", "Vance", "marguerite.ov", "1948", "Pat7", "Test"):
        assert secret not in body
    assert "Sciatica" not in body and "hospital" not in body  # no cancel reason
    assert "M.O." in body and "P.T." in body


def test_uid_is_stable_across_a_reschedule_and_sequence_goes_up(
    app, client, schedule, booker, marguerite
):
    patel, brennan = schedule["providers"]
    appointment_id = book(app, booker, marguerite, patel, SLOT)
    uid = f"appointment-{appointment_id}@clinic.test"
    before = events(fetch(client, token_of(app, patel)).data)[uid]

    with app.app_context():
        services.reschedule(
            db.session.get(Appointment, appointment_id),
            SLOT + timedelta(days=1, hours=1),
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, booker),
        )
        db.session.commit()

    after = events(fetch(client, token_of(app, patel)).data)[uid]
    assert after["SEQUENCE"] > before["SEQUENCE"]
    assert after.decoded("DTSTART") == SLOT + timedelta(days=1, hours=1)
    assert before.decoded("DTSTART") == SLOT
    assert events(fetch(client, token_of(app, brennan)).data) == {}


def test_cancelled_appointments_stay_in_the_feed_as_cancelled(
    app, client, schedule, booker, marguerite
):
    patel = schedule["providers"][0]
    kept = book(app, booker, schedule["patients"][0], patel, SLOT + timedelta(hours=2))
    cancelled = book(app, booker, marguerite, patel, SLOT)
    with app.app_context():
        services.cancel(
            db.session.get(Appointment, cancelled),
            "Patient asked",
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, booker),
        )
        db.session.commit()

    found = events(fetch(client, token_of(app, patel)).data)
    assert str(found[f"appointment-{cancelled}@clinic.test"]["STATUS"]) == "CANCELLED"
    assert str(found[f"appointment-{cancelled}@clinic.test"]["TRANSP"]) == "TRANSPARENT"
    assert str(found[f"appointment-{kept}@clinic.test"]["STATUS"]) == "CONFIRMED"


def test_every_status_maps_to_an_rfc5545_status_and_transparency(
    app, client, schedule, booker, marguerite
):
    """Not yet settled is TENTATIVE; what no longer holds the time is CANCELLED and free."""
    patel = schedule["providers"][0]
    expected = {  # FHIR status: (STATUS, TRANSP)
        "proposed": ("TENTATIVE", "TRANSPARENT"),
        "pending": ("TENTATIVE", "OPAQUE"),
        "waitlist": ("TENTATIVE", "TRANSPARENT"),
        "booked": ("CONFIRMED", "OPAQUE"),
        "arrived": ("CONFIRMED", "OPAQUE"),
        "checked-in": ("CONFIRMED", "OPAQUE"),
        "fulfilled": ("CONFIRMED", "OPAQUE"),
        "cancelled": ("CANCELLED", "TRANSPARENT"),
        "noshow": ("CANCELLED", "TRANSPARENT"),
        "entered-in-error": ("CANCELLED", "TRANSPARENT"),
    }
    assert set(expected) == {s.value for s in AppointmentStatus}
    ids = {}
    for i, status in enumerate(expected):
        ids[status] = book(app, booker, marguerite, patel, SLOT + timedelta(days=i))
        with app.app_context():
            db.session.get(Appointment, ids[status]).status = status
            db.session.commit()
    found = events(fetch(client, token_of(app, patel)).data)
    got = {
        status: (
            str(found[f"appointment-{i}@clinic.test"]["STATUS"]),
            str(found[f"appointment-{i}@clinic.test"]["TRANSP"]),
        )
        for status, i in ids.items()
    }
    assert got == expected


def test_body_is_rfc5545_crlf_and_folded_at_75_octets(app, client, schedule, booker, marguerite):
    patel = schedule["providers"][0]
    with app.app_context():
        location = db.session.get(Location, schedule["location"])
        # Long, and with multi-byte characters: folding counts octets, not characters.
        location.name = "Clínica de Coluna São José — Edifício Médico Três Corações, Ala Sul"
        location.address_line2 = "Suíte 1204 (entrada pela Avenida Presidente Juscelino)"
        db.session.commit()
    book(app, booker, marguerite, patel, SLOT)

    body = fetch(client, token_of(app, patel)).data
    assert body.startswith(b"BEGIN:VCALENDAR\r\n")
    assert body.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")  # no bare LF
    assert b"\r" not in body.replace(b"\r\n", b"")  # no bare CR
    lines = body.split(b"\r\n")[:-1]
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines)  # the location was folded
    for line in lines:
        line.decode("utf-8")  # never split inside a multi-byte character
    (event,) = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert str(event["LOCATION"]).startswith("Clínica de Coluna São José — Edifício Médico")
    assert "Suíte 1204" in str(event["LOCATION"])
    for required in ("UID", "DTSTAMP", "DTSTART", "DTEND"):
        assert required in event


@pytest.mark.parametrize("kind", ["wrong", "truncated", "longer", "empty-ish", "inactive"])
def test_unknown_or_inactive_token_is_404(app, client, schedule, kind):
    patel = schedule["providers"][0]
    token = token_of(app, patel)
    if kind == "inactive":
        with app.app_context():
            db.session.get(Provider, patel).active = False
            db.session.commit()
    candidate = {
        "wrong": services.new_feed_token(),
        "truncated": token[:-1],
        "longer": token + "A",
        "empty-ish": "-",
        "inactive": token,
    }[kind]
    response = client.get(f"/calendar/{candidate}.ics")
    assert response.status_code == 404
    assert b"BEGIN:VCALENDAR" not in response.data


def test_the_token_never_reaches_the_request_log(app, live_server, schedule, caplog):
    """The dev server logs every request line; the secret part of the path is redacted."""
    token = token_of(app, schedule["providers"][0])
    caplog.set_level(logging.INFO, logger="werkzeug")
    with urllib.request.urlopen(f"{live_server.base_url}/calendar/{token}.ics") as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(f"{live_server.base_url}/calendar/{token[:-2]}xy.ics")
    wrong.value.close()
    assert wrong.value.code == 404
    request_lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert sum("/calendar/[redacted]" in line for line in request_lines) == 2
    assert not any(token[:-2] in line for line in request_lines)
    assert not any(token[:-2] in r.getMessage() for r in caplog.records)
    # The back office's calendar pages are logged as they are.
    caplog.clear()
    logging.getLogger("werkzeug").info('"%s" %s', "GET /staff/calendar/day?day=2026-11-26", 302)
    assert caplog.records[-1].getMessage() == '"GET /staff/calendar/day?day=2026-11-26" 302'


@pytest.mark.parametrize(
    "path",
    ["/appointments/manage/SECRET.part", "/book/SECRET.part", "/calendar/SECRET.ics"],
)
def test_an_error_on_a_link_page_is_logged_without_its_secret(app, caplog, path):
    """Flask logs an unhandled error as "Exception on <path> [GET]" on the app's logger."""
    caplog.set_level(logging.ERROR, logger=app.logger.name)
    app.logger.error("Exception on %s [GET]", path, exc_info=(ValueError, ValueError(), None))
    logged = caplog.records[-1].getMessage()
    assert "SECRET" not in logged and "/[redacted] [GET]" in logged


def test_rotating_the_token_kills_the_old_url(app, client, schedule, login):
    patel = schedule["providers"][0]
    old = token_of(app, patel)
    login("front_desk")

    page = client.get("/staff/providers")
    assert page.status_code == 200
    assert f"http://clinic.test/calendar/{old}.ics".encode() in page.data

    response = client.post(f"/staff/providers/{patel}/feed-token")
    assert response.status_code == 302 and response.location.endswith("/staff/providers")
    new = token_of(app, patel)
    assert new != old and len(new) >= 43
    assert client.get(f"/calendar/{old}.ics").status_code == 404
    assert client.get(f"/calendar/{new}.ics").status_code == 200
    page = client.get("/staff/providers")
    assert f"http://clinic.test/calendar/{new}.ics".encode() in page.data
    assert old.encode() not in page.data

    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.resource_type == "provider", AuditEvent.action == "update"
            )
        ).one()
        assert event.resource_id == str(patel) and event.changed_fields == ["feed_token"]
        assert event.actor_role == "front_desk"
        assert old not in (event.reason or "") and new not in (event.reason or "")
        # The other provider's URL is untouched.
        assert db.session.get(Provider, schedule["providers"][1]).feed_token != new


def test_admin_rotates_too_and_unknown_provider_is_404(app, client, schedule, login):
    login("admin")
    assert client.get("/staff/providers").status_code == 200
    assert client.post("/staff/providers/999999/feed-token").status_code == 404


def test_admin_rotates_but_never_sees_a_feed_url(app, client, schedule, login):
    """A feed URL reads appointment times with patients' initials: PHI, which a practice admin
    does not see by default (spec 4.4). Rotating a leaked one needs no URL on the page."""
    patel = schedule["providers"][0]
    old = token_of(app, patel)
    login("admin")
    page = client.get("/staff/providers").get_data(as_text=True)
    assert old not in page and "/calendar/" not in page
    assert client.post(f"/staff/providers/{patel}/feed-token").status_code == 302
    new = token_of(app, patel)
    assert new != old
    page = client.get("/staff/providers").get_data(as_text=True)
    assert new not in page and "/calendar/" not in page
    with app.app_context():  # no URL was shown, so no viewing of URLs to audit
        assert not db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.resource_type == "provider", AuditEvent.action == "view"
            )
        ).all()


@pytest.mark.parametrize("role", ["nurse", "physician", "billing"])
def test_other_roles_cannot_see_or_rotate_feed_urls(app, client, schedule, login, role):
    patel = schedule["providers"][0]
    old = token_of(app, patel)
    login(role)
    assert client.get("/staff/providers").status_code == 403
    assert client.post(f"/staff/providers/{patel}/feed-token").status_code == 403
    assert token_of(app, patel) == old


def test_provider_pages_need_a_login(app, client, schedule):
    patel = schedule["providers"][0]
    assert client.get("/staff/providers").status_code == 302
    assert client.post(f"/staff/providers/{patel}/feed-token").status_code == 302
