"""Staff set up the schedule in the back office, and slot search follows at once."""

from __future__ import annotations

import re
from datetime import time

from sqlalchemy import select

from clinic.extensions import db
from clinic.models import AuditEvent
from clinic.scheduling.models import AppointmentType, ProviderHours


def slot_starts(client, day, provider_id, code="consultation"):
    return [
        s["start"]
        for s in client.get(
            "/api/v1/slots",
            query_string={
                "appointment_type": code,
                "start": day,
                "end": day,
                "provider_id": provider_id,
            },
        ).get_json()
    ]


def test_front_desk_sees_the_settings_page(client, login, schedule):
    login("front_desk")
    page = client.get("/staff/settings").get_data(as_text=True)
    assert "Weekly hours" in page and "Dr. Anika Patel" in page and "Monday" in page
    assert "New-patient consultation" in page


def test_roles(client, login, schedule):
    login("nurse")
    assert client.get("/staff/settings").status_code == 403


def test_add_hours_exception_time_off_and_closure(app, client, login, schedule):
    login("front_desk")
    provider, location = schedule["providers"][0], schedule["location"]
    # overlapping hours are refused with a field message
    response = client.post(
        "/staff/settings/hours",
        data={
            "hours-provider_id": provider,
            "hours-location_id": location,
            "hours-weekday": 0,
            "hours-start_time": "11:00",
            "hours-end_time": "14:00",
        },
    )
    assert response.status_code == 422 and "overlaps" in response.get_data(as_text=True)
    response = client.post(
        "/staff/settings/hours",
        data={
            "hours-provider_id": provider,
            "hours-location_id": location,
            "hours-weekday": 0,
            "hours-start_time": "18:00",
            "hours-end_time": "17:00",
        },
    )
    assert response.status_code == 422 and "after start" in response.get_data(as_text=True)
    response = client.post(
        "/staff/settings/hours",
        data={
            "hours-provider_id": provider,
            "hours-location_id": location,
            "hours-weekday": 0,
            "hours-start_time": "17:00",
            "hours-end_time": "19:00",
        },
    )
    assert response.status_code == 302
    monday = slot_starts(client, "2026-11-30", provider)
    assert "2026-11-30T18:15:00-05:00" in monday

    # a day off on Wednesday, time off on Thursday morning, the clinic closed on Friday
    assert (
        client.post(
            "/staff/settings/exception",
            data={
                "exception-provider_id": provider,
                "exception-location_id": location,
                "exception-day": "2026-12-02",
                "exception-reason": "Conference",
            },
        ).status_code
        == 302
    )
    assert slot_starts(client, "2026-12-02", provider) == []
    assert (
        client.post(
            "/staff/settings/time_off",
            data={
                "time_off-provider_id": provider,
                "time_off-start": "2026-12-03T08:00",
                "time_off-end": "2026-12-03T12:00",
            },
        ).status_code
        == 302
    )
    thursday = slot_starts(client, "2026-12-03", provider)
    assert thursday[0] == "2026-12-03T13:00:00-05:00"
    assert (
        client.post(
            "/staff/settings/closure",
            data={
                "closure-location_id": location,
                "closure-day": "2026-12-04",
                "closure-reason": "Holiday",
            },
        ).status_code
        == 302
    )
    assert slot_starts(client, "2026-12-04", provider) == []
    again = client.post(
        "/staff/settings/closure",
        data={"closure-location_id": location, "closure-day": "2026-12-04"},
    )
    assert again.status_code == 422
    with app.app_context():
        kinds = [
            e.resource_type
            for e in db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "config_change")
                .order_by(AuditEvent.id)
            )
        ]
    assert kinds == ["provider_hours", "schedule_exception", "time_off", "clinic_closure"]


def test_remove_hours(app, client, login, schedule):
    login("front_desk")
    with app.app_context():
        row = db.session.scalars(
            select(ProviderHours).where(
                ProviderHours.provider_id == schedule["providers"][0],
                ProviderHours.weekday == 0,
                ProviderHours.start_time >= time(13),
            )
        ).first()
        row_id = row.id
    assert client.post(f"/staff/settings/hours/{row_id}/delete").status_code == 302
    monday = slot_starts(client, "2026-11-30", schedule["providers"][0])
    assert monday and all(s < "2026-11-30T12:00" for s in monday)


def test_edit_an_appointment_type(app, client, login, schedule):
    login("admin")
    type_id = schedule["types"]["consultation"]
    response = client.post(
        f"/staff/settings/types/{type_id}",
        data={
            "duration_minutes": 1000,
            "buffer_before_minutes": 0,
            "buffer_after_minutes": 0,
            "step_minutes": 30,
            "min_notice_minutes": 60,
            "horizon_days": 30,
        },
    )
    assert response.status_code == 422 and "between 5 and 480" in response.get_data(as_text=True)
    response = client.post(
        f"/staff/settings/types/{type_id}",
        data={
            "duration_minutes": 60,
            "buffer_before_minutes": 0,
            "buffer_after_minutes": 0,
            "step_minutes": 60,
            "min_notice_minutes": 60,
            "horizon_days": 30,
            "daily_cap": "",  # as a browser sends an emptied field
            "patient_bookable": "y",
            "name": "  New-patient consultation  ",
            "active": "y",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        t = db.session.get(AppointmentType, type_id)
        assert (t.duration_minutes, t.step_minutes, t.daily_cap) == (60, 60, None)
    starts = slot_starts(client, "2026-11-30", schedule["providers"][0])
    assert starts[:3] == [
        "2026-11-30T08:00:00-05:00",
        "2026-11-30T09:00:00-05:00",
        "2026-11-30T10:00:00-05:00",
    ]


def add_north(client, timezone: str):
    """POST the settings' new-location form: a location "North" in ``timezone``."""
    return client.post(
        "/staff/settings/location",
        data={
            "location-name": "North",
            "location-address_line1": "1 North Rd",
            "location-city": "Holyoke",
            "location-state": "MA",
            "location-zip": "01040",
            "location-phone": "(555) 010-0300",
            "location-timezone": timezone,
        },
    )


def test_add_location_and_provider(app, client, login, schedule):
    login("front_desk")
    bad = add_north(client, "Mars/Olympus")
    assert bad.status_code == 422 and "time zone" in bad.get_data(as_text=True)
    elsewhere = add_north(client, "America/Chicago")
    assert elsewhere.status_code == 422
    assert "the clinic&#39;s time zone, America/New_York" in elsewhere.get_data(as_text=True)
    form = client.get("/staff/settings").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="location-timezone"[^>]*value="America/New_York"', form)
    ok = add_north(client, "America/New_York")
    assert ok.status_code == 302
    assert (
        client.post(
            "/staff/settings/provider",
            data={"provider-name": "Dr. Lena Ortiz", "provider-title": "DO"},
        ).status_code
        == 302
    )
    names = [p["name"] for p in client.get("/api/v1/providers").get_json()]
    assert "Dr. Lena Ortiz" in names
