"""The back office in a real browser: the queue's order and what each role may see."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from tests.conftest import FIXED_NOW, STAFF_PASSWORD

BOWEL_QUESTION = "Unable to control your bowels"


def log_in(page: Page, email: str) -> None:
    page.goto("/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def patient(first: str, last: str) -> dict:
    return {
        "first_name": first,
        "last_name": last,
        "email": f"{first}.{last}@example.com".lower(),
        "e_signature": f"{first} {last}",
    }


def test_nurse_and_front_desk_see_what_their_role_allows(
    app, live_server, new_page, make_staff, make_request
):
    # Received oldest first as routine, urgent, emergency: the queue must reorder them.
    routine = make_request(now=FIXED_NOW - timedelta(hours=3), **patient("Rita", "Routine"))
    urgent = make_request(
        now=FIXED_NOW - timedelta(hours=2), rf_fever="new", **patient("Ursula", "Urgent")
    )
    emergency = make_request(
        now=FIXED_NOW - timedelta(hours=1), rf_bowel="new", **patient("Emil", "Emergency")
    )
    make_staff("nurse")
    make_staff("front_desk")

    # The nurse: the queue, most urgent first.
    nurse = new_page()
    log_in(nurse, "nurse@clinic.test")
    expect(nurse).to_have_url(re.compile(r"/staff/requests$"))
    expect(nurse.get_by_role("heading", level=1)).to_have_text("Intake queue")
    rows = nurse.locator("table.queue tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator("td:nth-child(1) .badge:not(.badge-alert)")).to_have_text(
        ["Emergency", "Urgent", "Routine"]
    )
    expect(rows.locator("td:nth-child(2)")).to_have_text(
        [re.compile("Emil"), re.compile("Ursula"), re.compile("Rita")]
    )
    expect(rows.get_by_role("link")).to_have_text(
        [f"Open request #{emergency}", f"Open request #{urgent}", f"Open request #{routine}"]
    )

    # The emergency request, in full.
    nurse.get_by_role("link", name=f"Open request #{emergency}").click()
    expect(nurse).to_have_url(re.compile(rf"/staff/requests/{emergency}$"))
    expect(nurse.get_by_role("heading", level=1)).to_contain_text(f"Request #{emergency}")
    red_flags = nurse.locator("section.red-flags")
    expect(red_flags.get_by_role("heading", name="Red flags")).to_be_visible()
    expect(red_flags).to_contain_text(BOWEL_QUESTION)
    expect(red_flags).not_to_contain_text("A red-flag alert exists")
    expect(nurse.get_by_role("button", name="Acknowledge red flags")).to_be_visible()
    expect(nurse.get_by_role("heading", name="Candidacy signals")).to_be_visible()
    expect(nurse.get_by_role("heading", name="Your symptoms", exact=True)).to_be_visible()
    expect(nurse.get_by_role("heading", name="About you", exact=True)).to_be_visible()

    # The front desk, in its own browser context: that an alert exists, not what it is.
    desk = new_page()
    log_in(desk, "front_desk@clinic.test")
    desk.goto(f"/staff/requests/{emergency}")
    expect(desk.get_by_role("heading", level=1)).to_contain_text(f"Request #{emergency}")
    expect(desk.locator("section.red-flags")).to_contain_text(
        "A red-flag alert exists for this request."
    )
    expect(desk.get_by_role("heading", name="About you", exact=True)).to_be_visible()
    expect(desk.get_by_text(BOWEL_QUESTION)).to_have_count(0)
    expect(desk.get_by_role("heading", name="Candidacy signals")).to_have_count(0)
    expect(desk.get_by_role("heading", name="Your symptoms")).to_have_count(0)
    expect(desk.get_by_role("button", name="Acknowledge red flags")).to_have_count(0)
    expect(desk.locator("main")).not_to_contain_text("Heaviness or tiredness")  # a symptom answer

    # Logging out ends the session: the queue sends the browser back to the login page.
    desk.get_by_role("button", name="Log out").click()
    expect(desk).to_have_url(re.compile(r"/staff/login$"))
    expect(desk.get_by_role("button", name="Log out")).to_have_count(0)
    desk.goto("/staff/requests")
    expect(desk).to_have_url(re.compile(r"/staff/login(\?.*)?$"))
    expect(desk.get_by_role("heading", level=1)).to_have_text("Staff login")
    expect(desk.get_by_text("Intake queue")).to_have_count(0)

    # The nurse's own session is untouched by the other user's logout.
    nurse.goto("/staff/requests")
    expect(nurse.get_by_role("heading", level=1)).to_have_text("Intake queue")
