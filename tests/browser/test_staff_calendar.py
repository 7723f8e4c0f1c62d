"""In a real browser: the front desk opens the week, opens an appointment, moves it with the
Move form, and the week shows it at the new time. Keyboard-reachable controls only."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

import clinic.staff.calendar  # noqa: F401  (registers the calendar routes on the staff blueprint)
from clinic.extensions import db
from clinic.models import Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling.models import AppointmentType, Provider
from tests.browser.test_staff_pages import log_in
from tests.conftest import FIXED_NOW
from tests.scheduling.conftest import build_schedule

NY = ZoneInfo("America/New_York")


def test_front_desk_moves_an_appointment_from_the_week_view(app, live_server, page, make_staff):
    desk_id = make_staff("front_desk")
    with app.app_context():
        ids = build_schedule()
        appointment = services.book_appointment(
            db.session.get(Patient, ids["patients"][0]),
            db.session.get(AppointmentType, ids["types"]["consultation"]),
            db.session.get(Provider, ids["providers"][0]),
            datetime(2026, 11, 24, 11, 0, tzinfo=NY),
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, desk_id),
            source="staff",
        )
        db.session.commit()
        appointment_id = appointment.id
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: "Content Security Policy" in msg.text and problems.append(msg.text),
    )

    log_in(page, "front_desk@clinic.test")
    page.goto("/staff/calendar/week")
    expect(page.get_by_role("heading", level=1)).to_have_text("Week of Monday, November 23, 2026")
    week = page.get_by_role("table")
    expect(week.get_by_role("columnheader")).to_have_text(
        ["Day", "Dr. Anika Patel, MD", "Dr. Thomas Brennan, MD"]
    )
    tuesday = week.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Tue Nov 24"))
    expect(tuesday.get_by_role("cell").nth(0)).to_contain_text(
        "11:00 AM Pat0 Test New-patient consultation Booked"
    )

    # Open it from the keyboard: focus the link, press Enter.
    link = tuesday.get_by_role("link", name=re.compile("Pat0 Test"))
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/staff/appointments/{appointment_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Appointment #{appointment_id}")
    expect(page.get_by_text("Tuesday, November 24, 2026 11:00 AM")).to_be_visible()

    # Move it to Wednesday 2:30 PM with Dr. Brennan (the form posts with its CSRF token).
    page.get_by_label("New date and time").fill("2026-11-25T14:30")
    page.get_by_label("Provider").select_option(label="Dr. Thomas Brennan, MD")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page).to_have_url(re.compile(r"/staff/calendar/day\?date=2026-11-25$"))
    expect(page.get_by_role("status")).to_have_text(
        f"Appointment #{appointment_id} moved to Wed Nov 25, 2026 2:30 PM EST "
        "with Dr. Thomas Brennan."
    )
    day = page.get_by_role("table")
    half_past_two = day.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="2:30 PM", exact=True)
    )
    expect(half_past_two.get_by_role("cell").nth(1)).to_contain_text("Pat0 Test")

    # Back to the week: the appointment sits on Wednesday at the new time, in Dr. Brennan's column.
    page.get_by_role("link", name="Week", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Week of Monday, November 23, 2026")
    week = page.get_by_role("table")
    tuesday = week.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Tue Nov 24"))
    wednesday = week.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Wed Nov 25"))
    expect(tuesday).not_to_contain_text("Pat0 Test")
    expect(wednesday.get_by_role("cell").nth(0)).not_to_contain_text("Pat0 Test")
    expect(wednesday.get_by_role("cell").nth(1)).to_contain_text(
        "2:30 PM Pat0 Test New-patient consultation Booked"
    )
    assert problems == []  # no CSP refusals or script errors
