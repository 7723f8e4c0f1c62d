"""In a real browser, on a 360 px phone: a patient answers the day-1 follow-up check-in from the
link in its invitation email, and a nurse sees the answers on the patient's follow-up page; a
red flag instead stops the check-in, shows what to do now and pauses the patient's automation.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, Request, expect
from sqlalchemy import select

from clinic.extensions import db
from clinic.followup.models import AutomationPause, CheckIn, StaffTask, Timepoint
from clinic.notifications.models import Notification
from tests.browser.test_patient_intake import (
    MOBILE,
    assert_controls_labelled,
    assert_no_horizontal_scroll,
)
from tests.browser.test_staff_pages import log_in
from tests.conftest import FIXED_NOW

DOB = "04/17/1952"  # the example intake's patient, Margaret Okafor
RF_NEW = "Yes, and it is new (in the last days or weeks)"
# The check-in's safety questions (the intake's wording), then the wound ones of day 1 and day 10.
SCREEN_QUESTIONS = (
    "Trouble starting to pee, a weak stream, or not being able to pee at all",
    "Leaking urine, needing pads, or not knowing when your bladder is full or empty",
    "Unable to control your bowels, leaking, or not feeling when you pass a bowel movement",
    "Numbness or pins-and-needles between your legs",
    "Leg or foot weakness that is getting worse quickly",
    "New pain, numbness or weakness in both legs at the same time",
    "Fever of 100.4°F (38°C) or more, or chills, together with your back pain",
)
WOUND_QUESTIONS = (
    "Is blood soaking through the dressing on your back?",
    "Is fluid or pus leaking from the small cut on your back?",
    "Is redness or swelling around the cut spreading?",
)
GLOBAL_CHANGE = "Compared with before your treatment, how are your back and legs overall?"
WOUND_CLEAN = "Does the small cut on your back look clean and dry?"


# -- helpers ------------------------------------------------------------------------------------


def question(page: Page, legend: str):
    """A radio question by its legend: the fieldset's accessible name."""
    return page.get_by_role("group", name=re.compile(rf"^{re.escape(legend)}"))


def answer(page: Page, legend: str, choice: str) -> None:
    radio = question(page, legend).get_by_label(choice, exact=True)
    radio.check()
    expect(radio).to_be_checked()


def document_requests(page: Page) -> list[Request]:
    """Every page load of the main frame (redirect hops included), in order."""
    seen: list[Request] = []
    page.on(
        "request",
        lambda r: (
            seen.append(r) if r.is_navigation_request() and r.frame.parent_frame is None else None
        ),
    )
    return seen


def verify_identity(page: Page, link: str) -> None:
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your check-in")
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    page.get_by_label("Your date of birth").fill(DOB)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Safety questions")


def assert_urls_hold_no_answers(requests: list[Request], link: str, steps: list[str]) -> None:
    """The app redirects every step back to the one link: no URL carries an answer."""
    hops = [(r.method, r.url) for r in requests]
    expected = [("GET", link)]
    for step in steps:
        expected += [("POST", f"{link}/{step}"), ("GET", link)]
    assert hops == expected
    for r in requests:
        assert "?" not in r.url and "#" not in r.url
    # the answers travel in the POST bodies only
    for r in requests:
        if r.method == "POST":
            assert r.post_data and "csrf_token=" in r.post_data


def stored(app, model, *where):
    with app.app_context():
        found = list(db.session.scalars(select(model).where(*where).order_by(model.id)))
        db.session.expunge_all()
        db.session.remove()
        return found


def session_state(live_server, page: Page) -> dict:
    """The check-in's part of the signed session cookie, decoded as the server does."""
    [cookie] = [c for c in page.context.cookies() if c["name"] == "clinic_session"]
    serializer = live_server.session_interface.get_signing_serializer(live_server)
    return serializer.loads(cookie["value"])


@pytest.fixture
def checkin(app, live_server, make_request):
    """A procedure the day before FIXED_NOW for the example patient, whose intake came two weeks
    before it, recorded as staff do (which plans its follow-up); the day-1 check-in link as its
    invitation email carries it."""
    from clinic.followup.services import record_procedure
    from clinic.intake.models import ConsultationRequest
    from clinic.models import Patient
    from clinic.notifications import emails
    from clinic.scheduling.models import Provider
    from clinic.scheduling.services import new_feed_token
    from clinic.tokens import read_token

    request_id = make_request(now=FIXED_NOW - timedelta(days=15))  # the pre-procedure baseline
    # the live server's app: its BASE_URL is the address the email's link points at
    with live_server.test_request_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
        provider = Provider(name="Dr. Test", title="MD", feed_token=new_feed_token())
        db.session.add(provider)
        db.session.flush()
        procedure = record_procedure(
            db.session.get(Patient, patient_id),
            provider,
            date(2026, 11, 23),
            actor=None,
            now=FIXED_NOW,
        )
        db.session.commit()
        [day1] = [t for t in procedure.timepoints if t.code == "FU-D1"]
        invitation = db.session.scalars(
            select(Notification).where(
                Notification.kind == "checkin",
                Notification.cause_type == "timepoint",
                Notification.cause_id == day1.id,
            )
        ).one()
        message = emails.build(invitation, now=FIXED_NOW)
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        [link] = re.findall(r"^(http://\S+/checkin/\S+)$", text, flags=re.MULTILINE)
        payload = read_token("checkin", link.rsplit("/", 1)[1], 86400)
        found = {
            "timepoint_id": day1.id,
            "wound_questions": day1.wound_questions,
            "patient_id": patient_id,
        }
        db.session.remove()
    assert f'href="{link}"' in html  # the same link in both parts
    assert link.startswith(f"{live_server.base_url}/checkin/")
    assert payload == {"t": found["timepoint_id"]}  # the link names the timepoint, nothing else
    assert found["wound_questions"] is True  # day 1 asks about the wound
    return {**found, "link": link}


# -- 1. a routine check-in, then what the nurse sees --------------------------------------------


def test_patient_answers_the_day_1_checkin_on_a_phone_and_the_nurse_sees_it(
    app, live_server, new_page, make_staff, checkin
):
    link = checkin["link"]
    page = new_page(viewport=MOBILE)
    requests = document_requests(page)

    verify_identity(page, link)

    # step 1: the safety questions, with the wound ones of day 1; "No" to all
    expect(page.get_by_text("Step 1 of 2")).to_be_visible()
    expect(page.get_by_role("group")).to_have_count(len(SCREEN_QUESTIONS) + len(WOUND_QUESTIONS))
    expect(page.get_by_role("heading", name="Your wound")).to_be_visible()
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    for legend in SCREEN_QUESTIONS + WOUND_QUESTIONS:
        answer(page, legend, "No")
    page.get_by_role("button", name="Continue").click()

    # step 2: pain, walking and standing, the global change, the wound
    expect(page.get_by_role("heading", level=1)).to_have_text("How you are doing")
    expect(page.get_by_text("Step 2 of 2")).to_be_visible()
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    page.get_by_label("Back pain right now").fill("3")
    page.get_by_label("Leg or buttock pain right now").fill("6")
    page.get_by_label("About how many minutes can you walk").fill("20")
    page.get_by_label("About how many minutes can you stand").fill("12")
    for label in ("Back pain right now", "About how many minutes can you walk"):
        expect(page.get_by_label(label)).to_have_attribute("inputmode", "numeric")
    answer(page, GLOBAL_CHANGE, "Much better")
    answer(page, WOUND_CLEAN, "Yes")
    page.get_by_role("button", name="Send my answers").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, we have your answers")
    assert_no_horizontal_scroll(page)
    assert_urls_hold_no_answers(requests, link, ["identity", "screen", "answers"])
    [answers_post] = [r for r in requests if r.url.endswith("/answers")]
    assert "nprs_back=3" in answers_post.post_data and "global_change=6" in answers_post.post_data
    state = session_state(live_server, page)
    assert set(state) == {"checkin", "csrf_token"}  # the live server checks CSRF
    assert set(state["checkin"]) <= {"t", "at", "c", "done"}  # ids, a time, a flag: no answer

    # stored and scored against the intake's baseline (back 6, leg 7, walking 5, standing 10)
    [row] = stored(app, CheckIn)
    assert row.timepoint_id == checkin["timepoint_id"] and row.triage == "routine"
    assert row.scores == {
        "nprs_back": 3,
        "nprs_leg": 6,
        "walk_minutes": 20,
        "stand_minutes": 12,
        "global_change": 6,
        "odi_pct": None,
    }
    assert row.answers["wound_clean_dry"] == "yes" and row.answers["wound_bleeding"] == "no"
    assert row.submitted_at == FIXED_NOW
    [timepoint] = stored(app, Timepoint, Timepoint.id == checkin["timepoint_id"])
    assert timepoint.status == "completed"
    assert stored(app, AutomationPause) == []

    # the link now only says thank you, in this browser
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, we have your answers")

    # the nurse opens the patient's follow-up page
    make_staff("nurse")
    nurse = new_page()
    log_in(nurse, "nurse@clinic.test")
    nurse.goto(f"/staff/patients/{checkin['patient_id']}/follow-up")
    expect(nurse.get_by_role("heading", level=1)).to_have_text("Follow-up: Margaret Okafor")
    expect(nurse.get_by_role("heading", name="Routine messages are paused")).to_have_count(0)
    outcomes = nurse.get_by_role("table", name="Outcome figures")
    expect(outcomes.locator("tbody tr")).to_have_count(2)  # the baseline, then day 1
    day1 = outcomes.locator("tbody tr").filter(has_text="Day 1 check-in")
    expect(day1.locator("th, td")).to_have_text(
        [
            "Nov 24, 2026",
            "Day 1 check-in",
            "3 (\u22123)",
            "6 (\u22121)",
            "",
            "20 (+15)",
            "12 (+2)",
            "6 (Much better)",
        ]
    )
    answered = nurse.get_by_role("table", name="Check-ins answered, oldest first")
    expect(answered.locator("tbody tr td")).to_have_text(
        [
            "Nov 24, 2026 10:00 AM",
            "Day 1 check-in",
            "Routine",
            "None",
            "Clean and dry",
            "nprs back, walk minutes",
        ]
    )
    pain_chart = nurse.locator("figure.outcome-chart").filter(has_text="Leg pain (baseline 7)")
    expect(pain_chart.locator(".point title")).to_contain_text(
        [
            "Back pain, Day 1 check-in (Nov 24, 2026): 3",
            "Leg pain, Day 1 check-in (Nov 24, 2026): 6",
        ]
    )
    points = nurse.get_by_role("table", name=re.compile("^Follow-up points of the procedure"))
    day1_point = points.locator("tbody tr").filter(has=nurse.get_by_text("FU-D1", exact=True))
    expect(day1_point.locator("td")).to_have_text(
        ["FU-D1", "Day 1 check-in", "Tue Nov 24, 2026", "Nov 24 to Nov 26, 2026", "Answered"]
    )


# -- 2. a red flag ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legend", "choice", "triage", "heading", "words", "flag"),
    [
        (
            SCREEN_QUESTIONS[2],  # bowel control
            RF_NEW,
            "emergency",
            "Based on your answer, you may need emergency care.",
            "Call 911 or go to the nearest emergency department now.",
            {"field": "rf_bowel", "tier": "emergency", "answer": "new"},
        ),
        (
            WOUND_QUESTIONS[0],  # bleeding through the dressing
            "Yes",
            "urgent",
            "Please call our office today",
            "(555) 010-0100",
            {"field": "wound_bleeding", "tier": "urgent", "answer": "yes"},
        ),
    ],
    ids=["emergency", "urgent"],
)
def test_a_red_flag_shows_what_to_do_now_and_pauses_automation(
    app, live_server, new_page, make_staff, checkin, legend, choice, triage, heading, words, flag
):
    link = checkin["link"]
    page = new_page(viewport=MOBILE)
    requests = document_requests(page)

    verify_identity(page, link)
    for other in SCREEN_QUESTIONS + WOUND_QUESTIONS:
        answer(page, other, choice if other == legend else "No")
    page.get_by_role("button", name="Continue").click()

    alert = page.get_by_role("alert")
    expect(alert.get_by_role("heading", level=1)).to_have_text(heading)
    expect(alert).to_contain_text(words)
    expect(alert).to_contain_text("nothing more to fill in")
    expect(page.get_by_role("heading", name="How you are doing")).to_have_count(0)
    expect(page.get_by_role("textbox")).to_have_count(0)
    assert_no_horizontal_scroll(page)
    assert_urls_hold_no_answers(requests, link, ["identity", "screen"])

    # stored with its red flag; automation paused, a task and an alert for staff
    [row] = stored(app, CheckIn)
    assert row.triage == triage and row.red_flags == [flag] and row.scores == {}
    [pause] = stored(app, AutomationPause, AutomationPause.acknowledged_at.is_(None))
    assert pause.patient_id == checkin["patient_id"] and pause.checkin_id == row.id
    assert pause.created_at == FIXED_NOW
    [task] = stored(app, StaffTask, StaffTask.kind == "red_flag_checkin")
    assert (task.cause_type, task.cause_id) == ("checkin", row.id)
    [staff_alert] = stored(app, Notification, Notification.kind == "staff_alert")
    assert (staff_alert.cause_type, staff_alert.cause_id) == ("checkin", row.id)
    [timepoint] = stored(app, Timepoint, Timepoint.id == checkin["timepoint_id"])
    assert timepoint.status != "completed"

    # opening the link again still stops at the message: the questions stay closed
    page.goto(link)
    expect(page.get_by_role("alert").get_by_role("heading", level=1)).to_have_text(heading)

    # the nurse sees the pause and the red flag on the follow-up page
    make_staff("nurse")
    nurse = new_page()
    log_in(nurse, "nurse@clinic.test")
    nurse.goto(f"/staff/patients/{checkin['patient_id']}/follow-up")
    expect(nurse.get_by_role("heading", name="Routine messages are paused")).to_be_visible()
    expect(nurse.get_by_role("button", name="Acknowledge and resume messages")).to_be_visible()
    answered = nurse.get_by_role("table", name="Check-ins answered, oldest first")
    shown = flag["field"].removeprefix("rf_").replace("_", " ")
    expect(answered.locator("tbody tr td")).to_have_text(
        [
            "Nov 24, 2026 10:00 AM",
            "Day 1 check-in",
            triage.capitalize(),
            f"{shown} ({flag['answer']})",
            "-",  # the wound question comes after the screen: not asked
            "-",
        ]
    )
    # no scores: the day is not in the outcome figures, only the baseline is
    expect(nurse.get_by_role("table", name="Outcome figures").locator("tbody tr")).to_have_count(1)
