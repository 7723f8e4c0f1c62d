"""In a real browser: the front desk moves an appointment from the week view itself (its
Move-or-cancel disclosure, with the keyboard), sees it at the new time, then cancels it there.
Keyboard-reachable controls only, and no script the page's CSP refuses."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

import clinic.staff.calendar  # noqa: F401  (registers the calendar routes on the staff blueprint)
from clinic.extensions import db
from clinic.models import Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling.models import Appointment, AppointmentType, Provider
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

    # Open its Move-or-cancel disclosure from the keyboard, right there in the week.
    summary = tuesday.get_by_text("Move or cancel")
    summary.focus()
    page.keyboard.press("Enter")
    new_time = tuesday.get_by_label("New date and time")
    expect(new_time).to_be_visible()
    expect(new_time).to_have_value("2026-11-24T11:00")
    # Move it to Wednesday 2:30 PM with Dr. Brennan (the form posts with its CSRF token).
    new_time.fill("2026-11-25T14:30")
    tuesday.get_by_label("Provider").select_option(label="Dr. Thomas Brennan")
    tuesday.get_by_label("Provider").focus()
    page.keyboard.press("Tab")
    expect(tuesday.get_by_role("button", name=re.compile("^Move"))).to_be_focused()
    page.keyboard.press("Enter")

    # Back on the week: the appointment sits on Wednesday at the new time, in Brennan's column.
    expect(page).to_have_url(re.compile(r"/staff/calendar/week\?date=2026-11-25$"))
    expect(page.get_by_role("status")).to_have_text(
        f"Appointment #{appointment_id} moved to Wed Nov 25, 2026 2:30 PM EST "
        "with Dr. Thomas Brennan."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Week of Monday, November 23, 2026")
    week = page.get_by_role("table")
    tuesday = week.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Tue Nov 24"))
    wednesday = week.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Wed Nov 25"))
    expect(tuesday).not_to_contain_text("Pat0 Test")
    expect(wednesday.get_by_role("cell").nth(0)).not_to_contain_text("Pat0 Test")
    brennan = wednesday.get_by_role("cell").nth(1)
    expect(brennan).to_contain_text("2:30 PM Pat0 Test New-patient consultation Booked")

    # Cancel it from the same cell, with a reason.
    brennan.get_by_text("Move or cancel").click()
    brennan.get_by_label("Reason for cancelling").fill("Patient called to cancel")
    brennan.get_by_role("button", name=re.compile("^Cancel appointment")).click()
    expect(page).to_have_url(re.compile(r"/staff/calendar/week\?date=2026-11-25$"))
    expect(page.get_by_role("status")).to_have_text(f"Appointment #{appointment_id} cancelled.")
    brennan = (
        page.get_by_role("table")
        .get_by_role("row")
        .filter(has=page.get_by_role("rowheader", name="Wed Nov 25"))
        .get_by_role("cell")
        .nth(1)
    )
    expect(brennan).to_contain_text("2:30 PM Pat0 Test New-patient consultation Cancelled")
    expect(brennan.get_by_text("Move or cancel")).to_have_count(0)

    # The appointment's own page still opens from the week (focus the link, press Enter).
    brennan.get_by_role("link", name=re.compile("Pat0 Test")).focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/staff/appointments/{appointment_id}$"))
    expect(page.get_by_text("Patient called to cancel")).to_be_visible()
    assert problems == []  # no CSP refusals or script errors


def test_a_refused_move_starts_at_its_reason_with_the_time_kept(app, live_server, page, make_staff):
    """A move onto the other appointment's time: the page says why first (the keyboard and
    a screen reader start there) and keeps what was typed; nothing moves."""
    desk_id = make_staff("front_desk")
    with app.app_context():
        ids = build_schedule()
        desk = db.session.get(StaffUser, desk_id)
        consultation = db.session.get(AppointmentType, ids["types"]["consultation"])
        patel = db.session.get(Provider, ids["providers"][0])
        booked = [
            services.book_appointment(
                db.session.get(Patient, ids["patients"][n]),
                consultation,
                patel,
                datetime(2026, 11, 25, hour, 0, tzinfo=NY),
                now=FIXED_NOW,
                actor=desk,
                source="staff",
            )
            for n, hour in ((0, 9), (1, 10))
        ]
        db.session.commit()
        appointment_id = booked[0].id
    log_in(page, "front_desk@clinic.test")
    page.goto(f"/staff/appointments/{appointment_id}")
    page.get_by_label("New date and time").fill("2026-11-25T10:00")
    page.get_by_role("button", name="Move").click()

    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("That didn't work")
    expect(page.get_by_label("New date and time")).to_have_value("2026-11-25T10:00")
    with app.app_context():
        moved = db.session.get(Appointment, appointment_id)
        assert moved.start_at == datetime(2026, 11, 25, 9, 0, tzinfo=NY)
