"""The staff calendar on PostgreSQL: day and week grids, booking, moving, cancelling, statuses,
today's list, roles. Times are checked in New York wall time, on ordinary and DST days."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import clinic.staff.calendar  # noqa: F401  (registers the calendar routes on the staff blueprint)
from clinic.extensions import db
from clinic.models import AuditEvent, StaffUser
from clinic.scheduling.models import Appointment, AppointmentType
from tests.conftest import OWN_SCRIPTS, clock_at, scripts_in
from tests.scheduling.conftest import get_appointment, ny

NY = ZoneInfo("America/New_York")
PATEL, BRENNAN = "Dr. Anika Patel, MD", "Dr. Thomas Brennan, MD"
# The services' SlotUnavailable messages, shown in the page's error summary.
TAKEN = r'(?s)id="error-summary".*That time is (no longer available|not offered)\.'


# -- helpers ------------------------------------------------------------------------------------


class Table(HTMLParser):
    """The cells of one <table class="..."> (text and link targets), row by row."""

    def __init__(self, css_class: str):
        super().__init__()
        self.css_class = css_class
        self.depth = 0  # > 0 inside the wanted table
        self.rows: list[list[dict]] = []
        self.cell: dict | None = None
        self.classes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            if self.depth or self.css_class in (attrs.get("class") or "").split():
                self.depth += 1
            return
        if not self.depth:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = {
                "tag": tag,
                "text": "",
                "links": [],
                "class": attrs.get("class") or "",
                "inner": [],
            }
            self.rows[-1].append(self.cell)
        elif self.cell is not None:
            if tag == "a":
                self.cell["links"].append(attrs["href"])
            self.cell["inner"].append(attrs.get("class") or "")

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag in ("td", "th"):
            if self.cell is not None:
                self.cell["text"] = " ".join(self.cell["text"].split())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def table(html: str, css_class: str) -> list[list[dict]]:
    parser = Table(css_class)
    parser.feed(html)
    assert parser.rows, f"no table.{css_class} on the page"
    return parser.rows


def texts(rows) -> list[list[str]]:
    return [[c["text"] for c in row] for row in rows]


def row_by_label(rows, label: str) -> list[dict]:
    found = [row for row in rows if row[0]["text"] == label]
    assert len(found) == 1, (label, [row[0]["text"] for row in rows])
    return found[0]


# -- the day grid -------------------------------------------------------------------------------


def test_day_view_shows_providers_side_by_side_at_local_time(app, client, login, schedule, book):
    first = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    second = book(ny(2026, 11, 25, 14, 30), provider=1, patient=1, code="phone_check_in")
    login("front_desk")
    response = client.get("/staff/calendar/day?date=2026-11-25")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Wednesday, November 25, 2026" in html
    rows = table(html, "calendar")
    assert texts(rows)[0] == ["Time", PATEL, BRENNAN]
    body = rows[1:]
    # 08:00-12:00 and 13:00-17:00, every 15 minutes, lunch included as not working
    assert [r[0]["text"] for r in body][:2] == ["8:00 AM", "8:15 AM"]
    assert body[-1][0]["text"] == "4:45 PM" and len(body) == 36
    nine = row_by_label(body, "9:00 AM")
    assert "Pat0 Test" in nine[1]["text"] and "New-patient consultation" in nine[1]["text"]
    assert "Booked" in nine[1]["text"] and "9:00 AM–9:45 AM" in nine[1]["text"]
    assert f"/staff/appointments/{first}" in nine[1]["links"]
    assert "Pat0" not in nine[2]["text"] and "Book" in nine[2]["text"]
    half_past_two = row_by_label(body, "2:30 PM")
    assert "Pat1 Test" in half_past_two[2]["text"] and "Phone check-in" in half_past_two[2]["text"]
    assert f"/staff/appointments/{second}" in half_past_two[2]["links"]
    # The 45-minute visit and its 15-minute buffer hold Dr. Patel until 10:00.
    assert row_by_label(body, "9:30 AM")[1]["class"] == "cal-busy"
    assert row_by_label(body, "9:45 AM")[1]["class"] == "cal-buffer"
    assert row_by_label(body, "9:45 AM")[1]["links"] == []
    ten = row_by_label(body, "10:00 AM")[1]
    assert ten["class"] == "cal-free"
    query = parse_qs(urlsplit(ten["links"][0]).query)
    assert query == {
        "provider_id": [str(schedule["providers"][0])],
        "start": ["2026-11-25T10:00:00-05:00"],
    }
    noon = row_by_label(body, "12:00 PM")
    assert [c["class"] for c in noon[1:]] == ["cal-off", "cal-off"]
    assert noon[1]["links"] == [] and "Book" not in noon[1]["text"]
    # navigation
    assert 'href="/staff/calendar/day?date=2026-11-24"' in html
    assert 'href="/staff/calendar/day?date=2026-11-26"' in html
    assert 'href="/staff/calendar/week?date=2026-11-25"' in html
    # no inline style or script: the CSP forbids them
    assert "style=" not in html and scripts_in(html) == OWN_SCRIPTS


def test_day_view_defaults_to_today_and_hides_past_book_links(app, client, login, schedule):
    login("front_desk")
    html = client.get("/staff/calendar/day").get_data(as_text=True)
    assert "Tuesday, November 24, 2026" in html  # FIXED_NOW is 10:00 in New York
    body = table(html, "calendar")[1:]
    assert row_by_label(body, "9:45 AM")[1]["links"] == []
    assert row_by_label(body, "10:00 AM")[1]["links"]


@pytest.mark.parametrize(
    ("day", "offset", "zone", "utc_hour"),
    [("2026-11-01", "-05:00", "EST", 14), ("2026-03-08", "-04:00", "EDT", 13)],
)
def test_dst_days(app, client, login, schedule, book, day, offset, zone, utc_hour):
    y, m, d = (int(x) for x in day.split("-"))
    appointment_id = book(ny(y, m, d, 9, 0), provider=1, patient=2)
    assert get_appointment(app, appointment_id).start_at == datetime(y, m, d, utc_hour, tzinfo=UTC)
    login("front_desk")
    app.config["CLINIC_NOW"] = datetime(2026, 2, 1, tzinfo=UTC)  # both days ahead: Book links
    html = client.get(f"/staff/calendar/day?date={day}").get_data(as_text=True)
    assert "The clocks change today" in html
    body = table(html, "calendar")[1:]
    labels = [row[0]["text"] for row in body]
    assert labels[0] == f"8:00 AM {zone}" and labels[-1] == f"4:45 PM {zone}"
    assert len(labels) == 36 == len(set(labels))
    nine = row_by_label(body, f"9:00 AM {zone}")
    assert "Pat2 Test" in nine[2]["text"] and "9:00 AM" in nine[2]["text"]
    book_link = row_by_label(body, f"11:00 AM {zone}")[1]["links"]
    assert parse_qs(urlsplit(book_link[0]).query)["start"] == [f"{day}T11:00:00{offset}"]

    week = client.get(f"/staff/calendar/week?date={day}").get_data(as_text=True)
    cell = row_by_label(table(week, "calendar")[1:], datetime(y, m, d).strftime("%a %b %-d"))[2]
    assert "9:00 AM" in cell["text"] and "Pat2 Test" in cell["text"]

    # The booking form reads wall time in the clinic's zone, with that day's offset.
    response = client.post(
        "/staff/calendar/new",
        data={
            "patient_id": schedule["patients"][3],
            "appointment_type": "phone_check_in",
            "provider_id": schedule["providers"][0],
            "start": f"{day}T15:00",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        booked = db.session.scalars(
            select(Appointment).where(Appointment.patient_id == schedule["patients"][3])
        ).one()
        assert booked.start_at == datetime(y, m, d, utc_hour + 6, tzinfo=UTC)


def test_a_wall_time_skipped_by_the_clocks_is_refused(app, client, login, schedule):
    login("front_desk")
    response = client.post(
        "/staff/calendar/new",
        data={
            "patient_id": schedule["patients"][0],
            "appointment_type": "phone_check_in",
            "provider_id": schedule["providers"][0],
            "start": "2026-03-08T02:30",
        },
    )
    assert response.status_code == 422
    assert "does not exist on this day" in response.get_data(as_text=True)


def test_bad_date_and_no_login(app, client, login, schedule):
    assert client.get("/staff/calendar/day").status_code == 302  # to the login page
    assert client.get("/staff/today").status_code == 302
    login("nurse")
    # a mangled date shows today and says why (not the "page open too long" of a 400)
    for url, heading in [
        ("/staff/calendar/day?date=2026-13-01", "Tuesday, November 24, 2026"),
        ("/staff/calendar/week?date=yesterday", "Week of Monday, November 23, 2026"),
        ("/staff/calendar/day?date=9999-12-31", "Tuesday, November 24, 2026"),
    ]:
        response = client.get(url)
        page = response.get_data(as_text=True)
        assert response.status_code == 200 and heading in page
        assert "There is no date" in page and "here is today" in page
    assert client.get("/staff/appointments/999999").status_code == 404


# -- the week grid ------------------------------------------------------------------------------


def test_week_view(app, client, login, schedule, book):
    monday = book(ny(2026, 11, 23, 8, 30), provider=0, patient=0)
    sunday = book(ny(2026, 11, 29, 16, 0), provider=1, patient=1, code="post_procedure_visit")
    book(ny(2026, 11, 30, 9, 0), provider=0, patient=2)  # the next week
    cancelled = book(ny(2026, 11, 25, 13, 0), provider=0, patient=3, status="cancelled")
    login("billing")
    html = client.get("/staff/calendar/week?date=2026-11-26").get_data(as_text=True)
    assert "Week of Monday, November 23, 2026" in html
    rows = table(html, "calendar")
    assert texts(rows)[0] == ["Day", PATEL, BRENNAN]
    assert [r[0]["text"] for r in rows[1:]] == [
        "Mon Nov 23",
        "Tue Nov 24",
        "Wed Nov 25",
        "Thu Nov 26",
        "Fri Nov 27",
        "Sat Nov 28",
        "Sun Nov 29",
    ]
    mon = row_by_label(rows, "Mon Nov 23")
    assert "8:30 AM Pat0 Test New-patient consultation Booked" in mon[1]["text"]
    assert f"/staff/appointments/{monday}" in mon[1]["links"]
    assert mon[2]["text"] == "No appointments"
    sun = row_by_label(rows, "Sun Nov 29")
    assert "4:00 PM Pat1 Test Post-procedure visit" in sun[2]["text"]
    assert f"/staff/appointments/{sunday}" in sun[2]["links"]
    assert "Pat2" not in html
    wed = row_by_label(rows, "Wed Nov 25")
    assert "1:00 PM Pat3 Test New-patient consultation Cancelled" in wed[1]["text"]
    assert "appt-line appt-inactive" in wed[1]["inner"]  # struck through
    assert f"/staff/appointments/{cancelled}" in wed[1]["links"]
    assert 'href="/staff/calendar/week?date=2026-11-16"' in html
    assert 'href="/staff/calendar/week?date=2026-11-30"' in html
    assert 'href="/staff/calendar/day?date=2026-11-29"' in html
    assert "style=" not in html and scripts_in(html) == OWN_SCRIPTS


# -- booking from the calendar ------------------------------------------------------------------


def new_form(schedule, **overrides) -> dict:
    return {
        "patient_id": schedule["patients"][5],
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T10:00",
        **overrides,
    }


def test_book_from_the_calendar_then_the_slot_is_taken(app, client, login, schedule):
    login("front_desk")
    day = client.get("/staff/calendar/day?date=2026-11-25").get_data(as_text=True)
    link = row_by_label(table(day, "calendar")[1:], "10:00 AM")[1]["links"][0]
    form = client.get(link)
    assert form.status_code == 200
    page = form.get_data(as_text=True)
    assert 'value="2026-11-25T10:00"' in page
    assert f'<option value="{schedule["providers"][0]}" selected>' in page
    assert "Test, Pat5 (born 01/01/1950" in page  # patients by name with their birth date

    response = client.post("/staff/calendar/new", data=new_form(schedule))
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/calendar/day?date=2026-11-25"
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.start_at == datetime(2026, 11, 25, 15, tzinfo=UTC)
        assert appointment.source == "staff" and appointment.status == "booked"
        creator = db.session.get(StaffUser, appointment.created_by_id)
        assert creator.email == "front_desk@clinic.test"
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "create")).one()
        assert event.resource_id == str(appointment.id)
    followed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Appointment #{appointment.id} booked for Wed Nov 25, 2026 10:00 AM EST" in followed
    assert "Pat5 Test" in followed  # in the grid, not in the message
    message = re.search(r'class="flash[^"]*"[^>]*>([^<]*)<', followed).group(1)
    assert "Pat5" not in message

    # The same time again, for another patient: 409 and the form with a clear message.
    taken = client.post(
        "/staff/calendar/new", data=new_form(schedule, patient_id=schedule["patients"][6])
    )
    assert taken.status_code == 409
    page = taken.get_data(as_text=True)
    assert re.search(TAKEN, page) and "Choose another time" in page
    assert 'value="2026-11-25T10:00"' in page  # the answers are kept
    # Outside working hours: not offered.
    lunch = client.post("/staff/calendar/new", data=new_form(schedule, start="2026-11-25T12:15"))
    assert lunch.status_code == 409 and "That time is not offered." in lunch.get_data(as_text=True)
    with app.app_context():
        assert len(db.session.scalars(select(Appointment)).all()) == 1


def test_booking_form_validation(app, client, login, schedule):
    login("nurse")
    response = client.post(
        "/staff/calendar/new",
        data={"patient_id": "abc", "appointment_type": "massage", "provider_id": "", "start": "x"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for message in (
        "Choose the patient.",
        "Choose the type of visit.",
        "Choose the provider.",
        "Use the format YYYY-MM-DDTHH:MM.",
    ):
        assert message in page
    assert 'aria-invalid="true"' in page
    missing = client.post("/staff/calendar/new", data=new_form(schedule, start=""))
    assert missing.status_code == 422 and "Enter the date and time" in missing.get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.scalars(select(Appointment)).all() == []


def test_ids_that_are_not_ascii_numbers_are_field_errors(app, client, login, schedule, book):
    """ "\u00b2".isdigit() is True but int("\u00b2") raises: the booking and move forms answer
    with the field's message, not a 500."""
    appointment_id = book(ny(2026, 11, 25, 9, 0))
    login("front_desk")
    new = client.post(
        "/staff/calendar/new", data=new_form(schedule, patient_id="\u00b2", provider_id="\u00b2")
    )
    assert new.status_code == 422
    page = new.get_data(as_text=True)
    assert "Choose the patient." in page and "Choose the provider." in page
    move = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={"start": "2026-11-27T09:00", "provider_id": "\u00b2"},
    )
    assert move.status_code == 422
    assert "Choose a provider from the list." in move.get_data(as_text=True)
    assert get_appointment(app, appointment_id).start_at == ny(2026, 11, 25, 9, 0)


def test_the_daily_cap_holds_for_staff_too(app, client, login, schedule, book):
    """Staff skip the notice and the grid, not the type's per-day cap: booking or moving past
    it is refused with a message naming the cap, per provider and clinic-local day."""
    with app.app_context():
        db.session.get(AppointmentType, schedule["types"]["procedure"]).daily_cap = 2
        db.session.commit()
    first = book(ny(2026, 12, 15, 8, 0), code="procedure", patient=0)
    book(ny(2026, 12, 15, 10, 0), code="procedure", patient=1)
    later = book(ny(2026, 12, 16, 8, 0), code="procedure", patient=2)
    login("front_desk")
    capped = "The day&#39;s cap of 2 Procedure appointments with Dr. Anika Patel is reached."

    third = client.post(
        "/staff/calendar/new",
        data=new_form(schedule, appointment_type="procedure", start="2026-12-15T13:30"),
    )
    assert third.status_code == 409
    assert f"{capped} Choose another time or provider." in third.get_data(as_text=True)
    onto = client.post(f"/staff/appointments/{later}/move", data={"start": "2026-12-15T15:00"})
    assert onto.status_code == 409 and capped in onto.get_data(as_text=True)
    assert get_appointment(app, later).start_at == ny(2026, 12, 16, 8, 0)
    # Within the day, an appointment does not count against itself.
    within = client.post(f"/staff/appointments/{first}/move", data={"start": "2026-12-15T15:00"})
    assert within.status_code == 302
    # The cap is per provider.
    other = client.post(
        "/staff/calendar/new",
        data=new_form(
            schedule,
            appointment_type="procedure",
            provider_id=schedule["providers"][1],
            start="2026-12-15T13:30",
        ),
    )
    assert other.status_code == 302


# -- one appointment: move, cancel, status ------------------------------------------------------


def test_move_to_another_time_and_provider(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    blocker = book(ny(2026, 11, 26, 9, 0), provider=1, patient=1)
    login("front_desk")
    page = client.get(f"/staff/appointments/{appointment_id}").get_data(as_text=True)
    assert "Pat0 Test" in page and "Wednesday, November 25, 2026 9:00 AM" in page
    assert 'value="2026-11-25T09:00"' in page and "Move" in page

    response = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={"start": "2026-11-25T14:30", "provider_id": schedule["providers"][1]},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/calendar/day?date=2026-11-25"
    moved = get_appointment(app, appointment_id)
    assert moved.start_at == datetime(2026, 11, 25, 19, 30, tzinfo=UTC)
    assert moved.provider_id == schedule["providers"][1] and moved.sequence == 1
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Appointment #{appointment_id} moved to Wed Nov 25, 2026 2:30 PM EST" in html
    body = table(html, "calendar")[1:]
    assert "Pat0 Test" in row_by_label(body, "2:30 PM")[2]["text"]
    assert "Pat0 Test" not in row_by_label(body, "9:00 AM")[1]["text"]

    # Onto the other booking: 409, nothing changes.
    clash = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={"start": "2026-11-26T09:15", "provider_id": schedule["providers"][1]},
    )
    assert clash.status_code == 409
    assert re.search(TAKEN, clash.get_data(as_text=True))
    assert get_appointment(app, appointment_id).start_at == moved.start_at
    # Bad input: 422 with the field's message.
    bad = client.post(f"/staff/appointments/{appointment_id}/move", data={"start": "tomorrow"})
    assert bad.status_code == 422 and "Use the format" in bad.get_data(as_text=True)
    unknown = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={"start": "2026-11-27T09:00", "provider_id": "999999"},
    )
    assert unknown.status_code == 422
    assert "Choose a provider from the list." in unknown.get_data(as_text=True)
    # Without a provider: stays with the same one.
    same = client.post(
        f"/staff/appointments/{appointment_id}/move", data={"start": "2026-11-27T08:00"}
    )
    assert same.status_code == 302
    assert get_appointment(app, appointment_id).provider_id == schedule["providers"][1]
    assert get_appointment(app, blocker).sequence == 0


def test_cancel_needs_a_reason(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    login("front_desk")
    refused = client.post(f"/staff/appointments/{appointment_id}/cancel", data={"reason": "  "})
    assert refused.status_code == 422
    assert "Give a reason for cancelling." in refused.get_data(as_text=True)
    assert get_appointment(app, appointment_id).status == "booked"

    response = client.post(
        f"/staff/appointments/{appointment_id}/cancel", data={"reason": "Patient called"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/calendar/day?date=2026-11-25"
    cancelled = get_appointment(app, appointment_id)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "Patient called"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Appointment #{appointment_id} cancelled." in html
    nine = row_by_label(table(html, "calendar")[1:], "9:00 AM")[1]
    assert "Pat0 Test" in nine["text"] and "Cancelled" in nine["text"]
    assert "appt-line appt-inactive" in nine["inner"]  # struck through
    assert nine["class"] == "cal-free" and any("/staff/calendar/new" in h for h in nine["links"])
    # Cancelled is final: no more forms on its page, and a second cancel is refused.
    page = client.get(f"/staff/appointments/{appointment_id}").get_data(as_text=True)
    assert "Cancel appointment" not in page and 'name="status"' not in page
    again = client.post(f"/staff/appointments/{appointment_id}/cancel", data={"reason": "x"})
    assert again.status_code == 409  # the state refuses it, not the input
    assert "This appointment is cancelled already." in again.get_data(as_text=True)


def test_status_buttons_follow_the_transitions(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 24, 11, 0), provider=0, patient=0)
    login("nurse")
    page = client.get(f"/staff/appointments/{appointment_id}").get_data(as_text=True)
    offered = re.findall(r'name="status" value="([^"]+)"', page)
    assert offered == ["arrived", "checked-in", "entered-in-error"]  # no-show: from 11:00
    clock_at(app, ny(2026, 11, 24, 11, 0))
    login("nurse", "nurse-at-11@clinic.test")  # an hour idle ended the first session
    page = client.get(f"/staff/appointments/{appointment_id}").get_data(as_text=True)
    offered = re.findall(r'name="status" value="([^"]+)"', page)
    assert offered == ["arrived", "checked-in", "noshow", "entered-in-error"]

    refused = client.post(
        f"/staff/appointments/{appointment_id}/status", data={"status": "fulfilled"}
    )
    assert refused.status_code == 409
    assert "A booked appointment can&#39;t be marked fulfilled." in refused.get_data(as_text=True)
    assert get_appointment(app, appointment_id).status == "booked"
    unknown = client.post(f"/staff/appointments/{appointment_id}/status", data={"status": "gone"})
    assert unknown.status_code == 422

    response = client.post(
        f"/staff/appointments/{appointment_id}/status", data={"status": "arrived"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/calendar/day?date=2026-11-24"
    assert get_appointment(app, appointment_id).status == "arrived"
    page = client.get(f"/staff/appointments/{appointment_id}").get_data(as_text=True)
    assert re.findall(r'name="status" value="([^"]+)"', page) == [
        "checked-in",
        "fulfilled",
        "entered-in-error",
    ]
    assert "Cancel appointment" in page  # arrived -> cancelled is allowed, with a reason
    assert 'id="move-title"' not in page  # only booked or pending appointments move
    moving = client.post(
        f"/staff/appointments/{appointment_id}/move", data={"start": "2026-11-24T14:00"}
    )
    assert moving.status_code == 409 and "can&#39;t be moved" in moving.get_data(as_text=True)
    with app.app_context():
        changes = db.session.scalars(
            select(AuditEvent.reason).where(
                AuditEvent.action == "update", AuditEvent.resource_id == str(appointment_id)
            )
        ).all()
        assert changes == ["booked -> arrived"]


# -- today's list -------------------------------------------------------------------------------


def test_today_list_with_front_desk_buttons(app, client, login, schedule, book):
    late = book(ny(2026, 11, 24, 14, 0), provider=1, patient=0)
    early_b = book(ny(2026, 11, 24, 11, 0), provider=1, patient=1, code="phone_check_in")
    early_a = book(ny(2026, 11, 24, 11, 0), provider=0, patient=2)
    gone = book(ny(2026, 11, 24, 16, 0), provider=0, patient=3, status="cancelled")
    book(ny(2026, 11, 25, 9, 0), provider=0, patient=4)  # tomorrow
    login("front_desk")
    html = client.get("/staff/today").get_data(as_text=True)
    assert "Today, Tuesday, November 24, 2026" in html
    rows = table(html, "today")
    assert texts(rows)[0] == ["Time", "Patient", "Provider", "Visit", "Status", "Front desk"]
    body = rows[1:]
    ids = [int(re.search(r"/staff/appointments/(\d+)", r[0]["links"][0]).group(1)) for r in body]
    assert ids == [early_a, early_b, late, gone]  # by time, then provider
    assert body[0][0]["text"].startswith("11:00 AM") and body[2][0]["text"].startswith("2:00 PM")
    assert "Pat2 Test born 01/01/1950" in body[0][1]["text"]
    assert "Pat4" not in html
    buttons = re.findall(
        rf'/staff/appointments/{early_a}/status"[^>]*>.*?name="status" value="([^"]+)"', html, re.S
    )
    assert buttons == ["arrived", "checked-in"]  # no-show waits for 11:00
    assert html.count('<tr class="appt-inactive">') == 1 and body[3][4]["text"] == "Cancelled"
    assert f"/staff/appointments/{gone}/status" not in html

    clock_at(app, ny(2026, 11, 24, 11, 5))
    login("front_desk", "desk-at-11@clinic.test")  # an hour idle ended the first session
    response = client.post(
        f"/staff/appointments/{early_a}/status", data={"status": "arrived", "return_to": "today"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/staff/today"
    html = client.get("/staff/today").get_data(as_text=True)
    assert f"Appointment #{early_a}: arrived." in html
    buttons = re.findall(
        rf'/staff/appointments/{early_a}/status"[^>]*>.*?name="status" value="([^"]+)"', html, re.S
    )
    assert buttons == ["checked-in", "fulfilled"]
    client.post(
        f"/staff/appointments/{early_a}/status",
        data={"status": "checked-in", "return_to": "today"},
    )
    assert get_appointment(app, early_a).status == "checked-in"
    with app.app_context():
        views = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "view", AuditEvent.reason == "today list")
        ).all()
        assert len(views) == 2
        assert {v.actor_role for v in views} == {"front_desk"}
        assert all(v.resource_type == "appointment" for v in views)


def test_views_of_appointments_are_audited(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    login("physician")
    client.get("/staff/calendar/day?date=2026-11-25")
    client.get("/staff/calendar/week?date=2026-11-25")
    client.get(f"/staff/appointments/{appointment_id}")
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "view").order_by(AuditEvent.id)
        ).all()
        assert [e.reason for e in events] == [
            "calendar day 2026-11-25",
            "calendar week 2026-11-23",
            "appointment",
        ]
        assert events[2].patient_id == schedule["patients"][0]
        assert events[2].resource_id == str(appointment_id)


# -- roles --------------------------------------------------------------------------------------


def test_billing_sees_but_cannot_change(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 24, 11, 0), provider=0, patient=0)
    login("billing")
    for url in (
        "/staff/calendar/day",
        "/staff/calendar/week",
        "/staff/today",
        f"/staff/appointments/{appointment_id}",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        assert "Pat0 Test" in page
        assert "/staff/calendar/new" not in page and 'method="post" action="/staff/app' not in page
    assert client.get("/staff/calendar/new").status_code == 403
    assert client.post("/staff/calendar/new", data=new_form(schedule)).status_code == 403
    for action, data in (
        ("move", {"start": "2026-11-25T09:00"}),
        ("cancel", {"reason": "x"}),
        ("status", {"status": "arrived"}),
    ):
        response = client.post(f"/staff/appointments/{appointment_id}/{action}", data=data)
        assert response.status_code == 403, action
    unchanged = get_appointment(app, appointment_id)
    assert unchanged.status == "booked" and unchanged.sequence == 0


def test_admin_gets_403(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 24, 11, 0), provider=0, patient=0)
    login("admin")
    for url in (
        "/staff/calendar/day",
        "/staff/calendar/week",
        "/staff/today",
        "/staff/calendar/new",
        f"/staff/appointments/{appointment_id}",
    ):
        assert client.get(url).status_code == 403, url
    response = client.post(
        f"/staff/appointments/{appointment_id}/status", data={"status": "arrived"}
    )
    assert response.status_code == 403


def test_no_patient_names_in_urls(app, client, login, schedule, book):
    book(ny(2026, 11, 24, 11, 0), provider=0, patient=0)
    login("front_desk")
    for url in ("/staff/calendar/day", "/staff/calendar/week", "/staff/today"):
        html = client.get(url).get_data(as_text=True)
        targets = re.findall(r'(?:href|action)="([^"]*)"', html)
        assert targets and not [t for t in targets if "Pat" in t or "Test" in t], url
