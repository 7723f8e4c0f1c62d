"""In a real browser: a patient books a consultation right after the intake, then cancels it
from the manage link."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from clinic.extensions import db
from clinic.scheduling.models import Appointment
from tests.browser.test_patient_intake import (
    MOBILE,
    answer_red_flags,
    choose,
    fill,
    pick,
    save_and_continue,
)
from tests.scheduling.conftest import build_schedule


def complete_intake(page: Page) -> None:
    """The required answers of every step, as a patient on a phone gives them."""
    page.goto("/intake")
    answer_red_flags(page)
    save_and_continue(page)
    choose(page, "completed_by", "I am the patient")
    fill(page, {"first_name": "Ruth", "last_name": "Calloway", "date_of_birth": "04/17/1950"})
    choose(page, "preferred_contact", "Email")
    fill(page, {"email": "ruth.calloway@example.com"})
    choose(page, "voicemail_ok", "No")
    pick(page, "preferred_language", "English")
    save_and_continue(page)
    pick(page, "insurance_type", "I will pay myself")
    save_and_continue(page)
    choose(page, "symptom_locations", "Low back", "Thigh")
    choose(page, "symptom_laterality", "Left")
    choose(page, "symptom_types", "Pain")
    choose(page, "symptom_duration", "6 to 12 months")
    choose(page, "symptom_onset", "Slowly, over time")
    for field_id in ("worse_standing", "worse_walking", "relief_sitting", "relief_flexion"):
        choose(page, field_id, "Yes")
    fill(
        page,
        {
            "max_standing_minutes": "15",
            "max_walking_minutes": "10",
            "nprs_back_now": "5",
            "nprs_leg_now": "6",
            "nprs_back_avg7d": "5",
            "nprs_leg_avg7d": "6",
        },
    )
    save_and_continue(page)
    for field_id in (
        "tx_physical_therapy",
        "tx_home_exercise",
        "tx_opioid_current",
        "tx_esi",
        "tx_prior_mild",
        "tx_spacer",
        "tx_lumbar_surgery",
    ):
        choose(page, field_id, "No")
    choose(page, "tx_meds", "Acetaminophen (Tylenol)")
    save_and_continue(page)
    choose(page, "imaging_type", "No scan")
    save_and_continue(page)
    for field_id in ("anticoag_any", "bleeding_disorder", "active_infection"):
        choose(page, field_id, "No")
    choose(page, "pregnancy_possible", "No")
    choose(page, "allergy_contrast", "No")
    choose(page, "allergy_local_anesthetic", "No")
    choose(page, "can_lie_prone", "Yes")
    save_and_continue(page)
    for field_id in ("ack_not_emergency", "ack_npp", "attest_accurate"):
        page.locator(f"#{field_id}").check()
    choose(page, "consent_email", "Yes")
    fill(page, {"e_signature": "Ruth Calloway"})
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_url(re.compile(r"/intake/done$"))


def test_patient_books_after_the_intake_and_cancels_from_the_link(app, live_server, new_page):
    with app.app_context():
        build_schedule()
    page = new_page(viewport=MOBILE)
    complete_intake(page)

    page.get_by_role("link", name="Choose a time").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a time for your consultation")
    wednesday = page.get_by_role("group", name="Wednesday, November 25")
    expect(wednesday).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]
    wednesday.get_by_label(re.compile(r"^9:00 AM with Dr. Thomas Brennan")).check()
    page.get_by_role("button", name="Book this time").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Your appointment")
    expect(page.get_by_text("Wednesday, November 25, 2026 at 9:00 AM")).to_be_visible()
    expect(page.get_by_text("Dr. Thomas Brennan")).to_be_visible()
    manage_url = page.url
    assert "/appointments/manage/" in manage_url and "Calloway" not in manage_url

    # later, from the link in the confirmation: cancel
    page.goto(manage_url)
    page.get_by_label("Why are you cancelling?").select_option(label="I'm feeling better")
    page.get_by_role("button", name="Cancel my appointment").click()
    expect(page.get_by_text("This appointment is cancelled.")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel my appointment")).to_have_count(0)
    with app.app_context():
        [appointment] = db.session.scalars(select(Appointment)).all()
        assert appointment.status == "cancelled"
        assert appointment.cancel_reason == "Patient: I'm feeling better"
        assert appointment.patient.last_name == "Calloway"


def test_a_time_taken_meanwhile_is_said_first_with_the_focus_on_it(app, live_server, new_page):
    """Another patient takes the time while this one looks at the page: the page comes back
    with the same week, and the keyboard and screen reader start at the error summary."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from clinic.models import Patient
    from clinic.scheduling import services
    from clinic.scheduling.models import AppointmentType, Provider
    from clinic.tokens import make_token
    from tests.conftest import FIXED_NOW

    with app.app_context():
        ids = build_schedule()
    with live_server.test_request_context():  # a link as staff send it: no intake request
        token = make_token("booking", {"request_id": None, "patient_id": ids["patients"][0]})
    page = new_page(viewport=MOBILE)
    problems = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: "Content Security Policy" in msg.text and problems.append(msg))
    page.goto(f"/book/{token}")
    wednesday = page.get_by_role("group", name="Wednesday, November 25")
    wednesday.get_by_label(re.compile(r"^9:00 AM with Dr. Thomas Brennan")).check()
    with app.app_context():  # someone else is quicker
        services.book_appointment(
            db.session.get(Patient, ids["patients"][1]),
            db.session.get(AppointmentType, ids["types"]["consultation"]),
            db.session.get(Provider, ids["providers"][1]),
            datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("America/New_York")),
            now=FIXED_NOW,
            actor=None,
            source="patient",
        )
        db.session.commit()
    page.get_by_role("button", name="Book this time").click()

    expect(page).to_have_title(re.compile(r"^Error: Choose a time"))
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("That time was just taken. Please choose another.")
    expect(wednesday).to_be_visible()  # the same week, without the taken time
    expect(wednesday.get_by_label(re.compile(r"^9:00 AM with Dr. Thomas Brennan"))).to_have_count(0)
    page.keyboard.press("Tab")  # from the summary, on to its link to the list
    expect(summary.get_by_role("link")).to_be_focused()
    assert problems == []
    with app.app_context():
        assert db.session.scalars(select(Appointment)).one().patient_id == ids["patients"][1]


def test_the_day_links_take_the_keyboard_to_that_days_times(app, live_server, new_page):
    """The week's times are one radio group (one Tab stop, arrows move through it): the days'
    links above it let a keyboard or screen-reader user start at the day they want."""
    from clinic.tokens import make_token

    with app.app_context():
        ids = build_schedule()
    with live_server.test_request_context():
        token = make_token("booking", {"request_id": None, "patient_id": ids["patients"][0]})
    page = new_page(viewport=MOBILE)
    page.goto(f"/book/{token}")
    days = page.get_by_role("navigation", name="Days with free times").get_by_role("link")
    expect(days.first).to_have_accessible_name(re.compile(r"^Wed Nov 25 \d+ times$"))
    friday = days.filter(has_text="Fri Nov 27")
    friday.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    group = page.get_by_role("group", name=re.compile("^Friday, November 27"))
    expect(group.get_by_role("radio").first).to_be_focused()
    page.keyboard.press("ArrowDown")  # and on through the day's times
    expect(group.get_by_role("radio").nth(1)).to_be_checked()
    assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]
