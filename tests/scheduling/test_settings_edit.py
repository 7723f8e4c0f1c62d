"""Staff edit and deactivate what they set up in the back office: locations, providers,
appointment types; and remove date exceptions, time off and closures. Slot search follows at
once, bad input gets field errors and changes nothing, and every change is audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.models import AuditEvent
from clinic.scheduling.models import (
    AppointmentType,
    ClinicClosure,
    Location,
    Provider,
    ScheduleException,
    TimeOff,
)
from tests.scheduling.conftest import ny
from tests.scheduling.test_settings import slot_starts

MONDAY = "2026-11-30"


def config_events(app, resource_type: str) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "config_change", AuditEvent.resource_type == resource_type)
            .order_by(AuditEvent.id)
        ).all()


def location_form(**overrides) -> dict:
    return {
        "name": "Main Street",
        "address_line1": "120 Main Street",
        "address_line2": "",
        "city": "Springfield",
        "state": "MA",
        "zip": "01103",
        "phone": "(555) 010-0100",
        "timezone": "America/New_York",
        "active": "y",
        **overrides,
    }


# -- locations ----------------------------------------------------------------------------------


def test_edit_a_location(app, client, login, schedule):
    login("front_desk")
    location_id = schedule["location"]
    settings_page = client.get("/staff/settings").get_data(as_text=True)
    assert f'href="/staff/settings/locations/{location_id}"' in settings_page
    page = client.get(f"/staff/settings/locations/{location_id}").get_data(as_text=True)
    assert 'value="120 Main Street"' in page and 'value="(555) 010-0100"' in page
    assert '<input checked id="active" name="active" type="checkbox" value="y">' in page

    response = client.post(
        f"/staff/settings/locations/{location_id}",
        data=location_form(name="Main Street Spine", phone="(555) 010-0199"),
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/settings#location"
    with app.app_context():
        location = db.session.get(Location, location_id)
        assert (location.name, location.phone) == ("Main Street Spine", "(555) 010-0199")
        assert location.address_line2 is None and location.active
    (event,) = config_events(app, "location")
    assert event.changed_fields == ["name", "phone"]
    assert event.resource_id == str(location_id) and event.actor_role == "front_desk"
    # Saving again without a change logs nothing more.
    client.post(
        f"/staff/settings/locations/{location_id}",
        data=location_form(name="Main Street Spine", phone="(555) 010-0199"),
    )
    assert len(config_events(app, "location")) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "Use a time zone name like America/New_York."),
        # a real zone, but not the clinic's: every page and slot would show its hours an hour off
        ("timezone", "America/Chicago", "Use the clinic&#39;s time zone, America/New_York"),
        ("timezone", "", "This field is required."),
        ("name", "", "This field is required."),
        ("name", "x" * 121, "Field cannot be longer than 120 characters."),
        ("state", "Massachusetts", "Field must be exactly 2 characters long."),
        ("zip", "123", "Field must be between 5 and 10 characters long."),
        ("phone", "5" * 31, "Field cannot be longer than 30 characters."),
    ],
)
def test_a_bad_location_edit_changes_nothing(app, client, login, schedule, field, value, message):
    login("front_desk")
    location_id = schedule["location"]
    response = client.post(
        f"/staff/settings/locations/{location_id}",
        data=location_form(**{field: value, "city": "Chicopee"}),
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Location, location_id).city == "Springfield"
    assert config_events(app, "location") == []


def test_a_location_out_of_booking_offers_no_slots_and_says_what_still_stands(
    app, client, login, schedule, book
):
    book(ny(2026, 11, 30, 9, 0), provider=0, patient=0)
    book(ny(2026, 12, 1, 9, 0), provider=1, patient=1)
    book(ny(2026, 11, 20, 9, 0), provider=1, patient=2, status="fulfilled")  # the past
    login("front_desk")
    assert slot_starts(client, MONDAY, schedule["providers"][1])
    form = location_form()
    del form["active"]  # an unticked checkbox is not sent
    response = client.post(f"/staff/settings/locations/{schedule['location']}", data=form)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Main Street saved." in page
    assert "Main Street takes no new bookings, but 2 appointments from now on still stand" in page
    assert "<td>inactive</td>" in page
    assert slot_starts(client, MONDAY, schedule["providers"][1]) == []
    (event,) = config_events(app, "location")
    assert event.changed_fields == ["active"]
    # Back into booking: the slots return.
    response = client.post(
        f"/staff/settings/locations/{schedule['location']}", data=location_form()
    )
    assert "still stand" not in client.get(response.headers["Location"]).get_data(as_text=True)
    assert slot_starts(client, MONDAY, schedule["providers"][1])


# -- providers ----------------------------------------------------------------------------------


def test_rename_and_deactivate_a_provider(app, client, login, schedule, book):
    patel, brennan = schedule["providers"]
    book(ny(2026, 12, 2, 9, 0), provider=0, patient=0)
    login("front_desk")
    settings_page = client.get("/staff/settings").get_data(as_text=True)
    assert f'href="/staff/settings/providers/{patel}"' in settings_page
    page = client.get(f"/staff/settings/providers/{patel}").get_data(as_text=True)
    assert 'value="Dr. Anika Patel"' in page and 'value="MD"' in page

    blank = client.post(f"/staff/settings/providers/{patel}", data={"name": "   ", "active": "y"})
    assert blank.status_code == 422
    assert "This field is required." in blank.get_data(as_text=True)
    long = client.post(f"/staff/settings/providers/{patel}", data={"name": "x" * 121})
    assert long.status_code == 422
    with app.app_context():
        assert db.session.get(Provider, patel).active  # the refused form changed nothing

    response = client.post(
        f"/staff/settings/providers/{patel}",
        data={"name": " Dr. Anika Patel-Rao ", "title": "MD, PhD", "active": "y"},
    )
    assert response.status_code == 302
    with app.app_context():
        provider = db.session.get(Provider, patel)
        assert (provider.name, provider.title) == ("Dr. Anika Patel-Rao", "MD, PhD")
    assert "Dr. Anika Patel-Rao" in [p["name"] for p in client.get("/api/v1/providers").get_json()]

    response = client.post(
        f"/staff/settings/providers/{patel}", data={"name": "Dr. Anika Patel-Rao", "title": "MD"}
    )
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Dr. Anika Patel-Rao takes no new bookings, but 1 appointment from now on" in page
    gone = client.get(
        "/api/v1/slots",
        query_string={
            "appointment_type": "consultation",
            "start": MONDAY,
            "end": MONDAY,
            "provider_id": patel,
        },
    )
    assert gone.status_code == 422 and "Unknown provider." in gone.get_data(as_text=True)
    assert slot_starts(client, MONDAY, brennan)
    names = [p["name"] for p in client.get("/api/v1/providers").get_json()]
    assert "Dr. Anika Patel-Rao" not in names
    # The booking form no longer offers the provider.
    new = client.get("/staff/calendar/new").get_data(as_text=True)
    assert "Dr. Anika Patel-Rao" not in new and "Dr. Thomas Brennan" in new
    assert [e.changed_fields for e in config_events(app, "provider")] == [
        ["name", "title"],
        ["active", "title"],
    ]


# -- appointment types --------------------------------------------------------------------------


def test_rename_and_stop_offering_a_type(app, client, login, schedule):
    login("front_desk")
    type_id = schedule["types"]["post_procedure_visit"]
    data = {
        "name": "Post-procedure review",
        "duration_minutes": 20,
        "buffer_before_minutes": 0,
        "buffer_after_minutes": 10,
        "step_minutes": 15,
        "min_notice_minutes": 240,
        "horizon_days": 90,
        "daily_cap": "",
        "active": "y",
    }
    blank = client.post(f"/staff/settings/types/{type_id}", data={**data, "name": " "})
    assert blank.status_code == 422
    assert client.post(f"/staff/settings/types/{type_id}", data=data).status_code == 302
    assert "Post-procedure review" in client.get("/staff/calendar/new").get_data(as_text=True)
    assert slot_starts(client, MONDAY, schedule["providers"][0], "post_procedure_visit")

    del data["active"]
    assert client.post(f"/staff/settings/types/{type_id}", data=data).status_code == 302
    with app.app_context():
        assert not db.session.get(AppointmentType, type_id).active
    assert "Post-procedure review" not in client.get("/staff/calendar/new").get_data(as_text=True)
    refused = client.get(
        "/api/v1/slots",
        query_string={"appointment_type": "post_procedure_visit", "start": MONDAY, "end": MONDAY},
    )
    assert refused.status_code == 422
    assert [e.changed_fields for e in config_events(app, "appointment_type")] == [
        ["name"],
        ["active"],
    ]


# -- removing exceptions, time off and closures -------------------------------------------------


def test_remove_an_exception_time_off_and_a_closure(app, client, login, schedule):
    provider, location = schedule["providers"][0], schedule["location"]
    login("front_desk")
    for kind, data in (
        ("exception", {"provider_id": provider, "location_id": location, "day": "2026-12-02"}),
        (
            "time_off",
            {"provider_id": provider, "start": "2026-12-03T08:00", "end": "2026-12-03T17:00"},
        ),
        ("closure", {"location_id": location, "day": "2026-12-04", "reason": "Holiday"}),
    ):
        form = {f"{kind}-{name}": value for name, value in data.items()}
        assert client.post(f"/staff/settings/{kind}", data=form).status_code == 302, kind
    for day in ("2026-12-02", "2026-12-03", "2026-12-04"):
        assert slot_starts(client, day, provider) == [], day

    page = client.get("/staff/settings").get_data(as_text=True)
    assert "Dr. Anika Patel" in page and "provider #" not in page and "location #" not in page
    with app.app_context():
        ids = {
            "exception": db.session.scalars(select(ScheduleException.id)).one(),
            "time_off": db.session.scalars(select(TimeOff.id)).one(),
            "closure": db.session.scalars(select(ClinicClosure.id)).one(),
        }
    for kind, row_id in ids.items():
        assert f'action="/staff/settings/{kind}/{row_id}/delete"' in page, kind

    assert client.post(f"/staff/settings/audit/{ids['closure']}/delete").status_code == 404
    assert client.post("/staff/settings/closure/999999/delete").status_code == 404
    for kind, row_id in ids.items():
        response = client.post(f"/staff/settings/{kind}/{row_id}/delete")
        assert response.status_code == 302
        assert response.headers["Location"] == f"/staff/settings#{kind}"
    for day in ("2026-12-02", "2026-12-03", "2026-12-04"):
        assert slot_starts(client, day, provider), day
    with app.app_context():
        assert db.session.scalars(select(ScheduleException)).all() == []
        assert db.session.scalars(select(TimeOff)).all() == []
        assert db.session.scalars(select(ClinicClosure)).all() == []
    for resource_type in ("schedule_exception", "time_off", "clinic_closure"):
        events = config_events(app, resource_type)
        assert [e.changed_fields[-1] for e in events][-1] == "deleted", resource_type


def test_only_schedule_editors_edit(app, client, login, schedule):
    location_id, provider_id = schedule["location"], schedule["providers"][0]
    login("nurse")
    for url in (
        f"/staff/settings/locations/{location_id}",
        f"/staff/settings/providers/{provider_id}",
    ):
        assert client.get(url).status_code == 403, url
        assert client.post(url, data={"name": "X"}).status_code == 403, url
    with app.app_context():
        closure = ClinicClosure(location_id=location_id, day=ny(2026, 12, 4).date(), reason="")
        db.session.add(closure)
        db.session.commit()
        closure_id = closure.id
    assert client.post(f"/staff/settings/closure/{closure_id}/delete").status_code == 403
    with app.app_context():
        assert db.session.get(ClinicClosure, closure_id) is not None
        assert db.session.get(Provider, provider_id).name == "Dr. Anika Patel"


@pytest.mark.parametrize(
    ("field", "value"),
    [("start", "2027-03-14T02:30"), ("end", "2027-03-14T02:00")],
)
def test_time_off_at_a_wall_time_the_clocks_skip_is_refused(
    app, client, login, schedule, field, value
):
    login("front_desk")
    form = {
        "time_off-provider_id": schedule["providers"][0],
        "time_off-start": "2027-03-14T00:00",
        "time_off-end": "2027-03-14T12:00",
        f"time_off-{field}": value,
    }
    response = client.post("/staff/settings/time_off", data=form)
    assert response.status_code == 422
    assert "That time does not exist on this day" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(TimeOff)).all() == []


def test_time_off_in_the_repeated_hour_means_the_first_one(app, client, login, schedule):
    login("front_desk")
    form = {
        "time_off-provider_id": schedule["providers"][0],
        "time_off-start": "2026-11-01T01:30",
        "time_off-end": "2026-11-01T03:00",
    }
    assert client.post("/staff/settings/time_off", data=form).status_code == 302
    with app.app_context():
        row = db.session.scalars(select(TimeOff)).one()
        assert row.start_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 1:30 EDT
        assert row.end_at == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)  # 3:00 EST
