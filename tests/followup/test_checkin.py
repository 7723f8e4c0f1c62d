"""The patient's check-in through the test client, on PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect

from clinic.extensions import db
from clinic.followup import checkin as service
from clinic.followup.models import AutomationPause, CheckIn, StaffTask, Timepoint
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent
from clinic.notifications.models import Notification
from tests.conftest import FIXED_NOW

DOB = "04/17/1952"  # the example intake's patient
SCREEN_CLEAR = {
    "rf_urinary_retention": "no",
    "rf_urinary_incontinence": "no",
    "rf_bowel": "no",
    "rf_saddle_numbness": "no",
    "rf_progressive_weakness": "no",
    "rf_bilateral_new": "no",
    "rf_fever": "no",
}
WOUND_CLEAR = {"wound_bleeding": "no", "wound_drainage": "no", "wound_spreading_redness": "no"}
ANSWERS = {
    "nprs_back": "3",
    "nprs_leg": "6",
    "walk_minutes": "20",
    "stand_minutes": "12",
    "global_change": "6",
}


def planned_links(app, request_id: int, performed_on: date) -> dict:
    """Record a procedure on ``performed_on`` for the request's patient, as staff do (which
    plans its follow-up); a token and a check-in URL per timepoint."""
    from clinic.followup.services import record_procedure
    from clinic.models import Patient
    from clinic.scheduling.models import Provider
    from clinic.scheduling.services import new_feed_token
    from clinic.tokens import make_token

    with app.test_request_context():
        request = db.session.get(ConsultationRequest, request_id)
        provider = Provider(name="Dr. Test", title="MD", feed_token=new_feed_token())
        db.session.add(provider)
        db.session.flush()
        patient = db.session.get(Patient, request.patient_id)
        procedure = record_procedure(patient, provider, performed_on, actor=None, now=FIXED_NOW)
        db.session.commit()
        tokens = {tp.code: make_token("checkin", {"t": tp.id}) for tp in procedure.timepoints}
        ids = {tp.code: tp.id for tp in procedure.timepoints}
        return {
            "token": tokens,
            "id": ids,
            "patient_id": patient.id,
            "request_id": request_id,
            "url": {code: f"/checkin/{t}" for code, t in tokens.items()},
        }


@pytest.fixture
def link(app, make_request):
    """A procedure the day before FIXED_NOW for the example patient, whose intake came two
    weeks before it."""
    request_id = make_request(now=FIXED_NOW - timedelta(days=15))
    return planned_links(app, request_id, date(2026, 11, 23))


def verified(client, url: str):
    response = client.post(f"{url}/identity", data={"date_of_birth": DOB})
    assert response.status_code == 302
    return response


def screened(client, url: str, wound: bool = False, **answers):
    verified(client, url)
    response = client.post(
        f"{url}/screen", data={**SCREEN_CLEAR, **(WOUND_CLEAR if wound else {}), **answers}
    )
    assert response.status_code == 302, response.data[:2000]
    return response


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def rows(app, model, *where):
    with app.app_context():
        found = list(db.session.scalars(select(model).where(*where).order_by(model.id)))
        db.session.expunge_all()
        return found


# -- identity ---------------------------------------------------------------------------------


def test_the_link_asks_for_the_date_of_birth_first(client, link):
    page = client.get(link["url"]["FU-W6"])
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert '<label for="date_of_birth">' in html and 'id="date_of_birth"' in html
    assert "Back pain" not in html and "rf_bowel" not in html
    # a step can't be skipped to: it sends the patient back to the page
    for step in ("screen", "answers"):
        response = client.post(f"{link['url']['FU-W6']}/{step}", data=SCREEN_CLEAR)
        assert response.status_code == 302
    assert count(client.application, CheckIn) == 0


def test_wrong_dates_of_birth_lock_the_checkin(app, client, link):
    url, tp = link["url"]["FU-W6"], link["id"]["FU-W6"]
    for left in (4, 3, 2, 1):
        page = client.post(f"{url}/identity", data={"date_of_birth": "04/18/1952"})
        assert page.status_code == 422
        html = page.get_data(as_text=True)
        assert "does not match our records" in html and 'href="#date_of_birth"' in html
        assert f"{left} more tr" in html
    page = client.post(f"{url}/identity", data={"date_of_birth": "04/18/1952"})
    assert page.status_code == 403 and "locked" in page.get_data(as_text=True)
    # the right date no longer opens it, in this browser or any other
    assert client.post(f"{url}/identity", data={"date_of_birth": DOB}).status_code == 403
    assert app.test_client().get(url).status_code == 403
    events = rows(app, AuditEvent, AuditEvent.action == service.IDENTITY_ACTION)
    assert [e.outcome for e in events] == ["failure"] * 5
    assert all(e.resource_id == str(tp) and e.patient_id == link["patient_id"] for e in events)
    # another timepoint's link is not locked
    assert client.get(link["url"]["FU-M3"]).status_code == 200


def test_staff_unlock_a_locked_link_after_checking_by_phone(app, client, link, login):
    url, tp = link["url"]["FU-W6"], link["id"]["FU-W6"]
    patient = app.test_client()  # the patient's browser; `client` is the nurse's
    for _ in range(5):
        patient.post(f"{url}/identity", data={"date_of_birth": "04/18/1952"})
    assert patient.get(url).status_code == 403
    [task] = rows(app, StaffTask, StaffTask.kind == service.LOCKED_TASK)
    assert (task.cause_type, task.cause_id, task.done_at) == ("followup_timepoint", tp, None)
    assert "1952" not in task.title  # no date typed, right or wrong

    followup_page = f"/staff/patients/{link['patient_id']}/follow-up"
    unlock = f"/staff/timepoints/{tp}/unlock"
    login("nurse")
    html = client.get(followup_page).get_data(as_text=True)
    assert html.count("Link locked") == 1 and f'action="{unlock}"' in html
    assert client.get(unlock).status_code == 405  # acts on POST only
    response = client.post(unlock)
    assert response.status_code == 302 and response.location == followup_page
    assert "Link locked" not in client.get(followup_page).get_data(as_text=True)
    [event] = rows(app, AuditEvent, AuditEvent.action == service.UNLOCK_ACTION)
    assert event.actor_role == "nurse" and event.resource_id == str(tp)
    [task] = rows(app, StaffTask, StaffTask.kind == service.LOCKED_TASK)
    assert task.done_at is not None and task.note == "link unlocked"
    # the patient has their tries back, and the right date opens it
    assert 'id="date_of_birth"' in patient.get(url).get_data(as_text=True)
    verified(patient, url)
    # unlocking what is not locked changes nothing
    response = client.post(unlock, follow_redirects=True)
    assert "was not locked" in response.get_data(as_text=True)
    assert len(rows(app, AuditEvent, AuditEvent.action == service.UNLOCK_ACTION)) == 1
    client.post("/staff/logout")
    login("front_desk")
    assert client.post(unlock).status_code == 403


def test_a_typo_is_not_a_wrong_try_and_a_right_answer_resets(app, client, link):
    url = link["url"]["FU-W6"]
    for typo in ("", "13/45/1952", "1952", "02/30/1952", "04/17/1852", "x" * 5000):
        page = client.post(f"{url}/identity", data={"date_of_birth": typo})
        assert page.status_code == 422
        assert "date of birth" in page.get_data(as_text=True).lower()
    for _ in range(4):
        client.post(f"{url}/identity", data={"date_of_birth": "01/01/1950"})
    verified(client, url)
    with app.app_context():
        assert service.identity_failures(db.session.get(Timepoint, link["id"]["FU-W6"])) == 0
    assert client.post(f"{url}/identity", data={"date_of_birth": "1952-04-17"}).status_code == 302


def test_the_identity_check_lasts_two_hours(app, client, link):
    url = link["url"]["FU-W6"]
    verified(client, url)
    assert "Safety questions" in client.get(url).get_data(as_text=True)
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(hours=2, minutes=1)
    assert 'id="date_of_birth"' in client.get(url).get_data(as_text=True)


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def carried(html: str) -> dict[str, str]:
    """The hidden fields of a page's form but its CSRF token: what the browser posts back."""
    return {name: value for name, value in HIDDEN.findall(html) if name != "csrf_token"}


def test_answers_sent_after_the_two_hours_are_kept_through_a_new_identity_check(app, client, link):
    url, tp = link["url"]["FU-W6"], link["id"]["FU-W6"]
    screened(client, url)
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(hours=2, minutes=1)
    page = client.post(f"{url}/answers", data={**ANSWERS, "not_a_question": "x"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="date_of_birth"' in html
    assert "Your answers are kept" in html
    assert carried(html) == {"carry": "answers", **ANSWERS}  # the questions' fields only
    assert rows(app, Timepoint, Timepoint.id == tp)[0].status != "completed"  # not without it
    wrong = client.post(f"{url}/identity", data={**carried(html), "date_of_birth": "01/01/1950"})
    assert wrong.status_code == 422
    assert carried(wrong.get_data(as_text=True)) == {"carry": "answers", **ANSWERS}
    done = client.post(f"{url}/identity", data={**carried(html), "date_of_birth": DOB})
    assert done.status_code == 302 and done.location == url
    assert "we have your answers" in client.get(url).get_data(as_text=True)
    [row] = rows(app, CheckIn)
    assert row.answers == {**SCREEN_CLEAR, **{k: int(v) for k, v in ANSWERS.items()}}
    assert rows(app, Timepoint, Timepoint.id == tp)[0].status == "completed"


def test_carried_answers_that_fail_a_check_come_back_on_the_questions(app, client, link):
    url, tp = link["url"]["FU-W6"], link["id"]["FU-W6"]
    screened(client, url)
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(hours=3)
    html = client.post(f"{url}/answers", data={**ANSWERS, "nprs_back": "11"}).get_data(as_text=True)
    page = client.post(f"{url}/identity", data={**carried(html), "date_of_birth": DOB})
    assert page.status_code == 422
    questions = page.get_data(as_text=True)
    assert 'id="nprs_back"' in questions and 'value="20"' in questions  # walking minutes kept
    assert rows(app, Timepoint, Timepoint.id == tp)[0].status != "completed"


def test_an_identity_check_alone_carries_nothing(app, client, link):
    url, tp = link["url"]["FU-W6"], link["id"]["FU-W6"]
    screened(client, url)
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(hours=3)
    verified(client, url)  # no carried answers: back to the questions, nothing submitted
    assert 'id="nprs_back"' in client.get(url).get_data(as_text=True)
    assert rows(app, Timepoint, Timepoint.id == tp)[0].status != "completed"


# -- the red-flag screen ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "triage", "words"),
    [
        ({"rf_bowel": "new"}, "emergency", "Call 911 or go to the nearest emergency department"),
        ({"rf_saddle_numbness": "worsening"}, "emergency", "Call 911"),
        ({"rf_fever": "worsening"}, "urgent", "Please call our office today"),
    ],
)
def test_a_red_flag_stops_alerts_and_pauses(app, client, link, answer, triage, words):
    url = link["url"]["FU-W6"]
    screened(client, url, **answer)
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and words in html
    if triage == "urgent":
        assert "(555) 010-0100" in html
    assert "Back pain" not in html
    [row] = rows(app, CheckIn)
    assert row.triage == triage and row.scores == {} and row.timepoint_id == link["id"]["FU-W6"]
    [field] = answer
    assert row.red_flags == [{"field": field, "tier": triage, "answer": answer[field]}]
    [pause] = rows(app, AutomationPause, AutomationPause.acknowledged_at.is_(None))
    assert pause.patient_id == link["patient_id"] and pause.checkin_id == row.id
    [task] = rows(app, StaffTask, StaffTask.kind == "red_flag_checkin")
    assert task.title == "Check-in red flag: call the patient now"
    assert (task.cause_type, task.cause_id, task.patient_id) == ("checkin", row.id, row.patient_id)
    [alert] = rows(app, Notification, Notification.kind == "staff_alert")
    assert (alert.cause_type, alert.cause_id) == ("checkin", row.id)
    # handed to Celery at once: a worker left running by an earlier test may have sent it
    assert alert.status in ("sending", "sent")
    assert alert.due_at == FIXED_NOW
    assert rows(app, Timepoint, Timepoint.id == row.timepoint_id)[0].status != "completed"
    [event] = rows(app, AuditEvent, AuditEvent.action == "red_flag_raised")
    assert event.changed_fields == [field] and event.resource_id == str(row.id)
    # the questionnaire stays stopped
    assert client.post(f"{url}/answers", data=ANSWERS).status_code == 302
    assert rows(app, CheckIn)[0].scores == {}


def test_the_stop_holds_in_every_browser_until_staff_acknowledge(app, client, link, make_staff):
    """The red flag is kept on the server: another browser (or this one after the date-of-birth
    check runs out) gets the same message and can't answer, until staff acknowledge."""
    from clinic.followup.services import acknowledge_pause
    from clinic.models import StaffUser

    url = link["url"]["FU-W6"]
    screened(client, url, rf_bowel="new")
    other = app.test_client()
    verified(other, url)
    page = other.get(url).get_data(as_text=True)
    assert "Call 911" in page and "Safety questions" not in page
    # answering from there changes nothing
    clear = SCREEN_CLEAR
    assert other.post(f"{url}/screen", data=clear).status_code == 302
    assert other.post(f"{url}/answers", data=ANSWERS).status_code == 302
    [row] = rows(app, CheckIn)
    assert row.triage == "emergency" and row.scores == {}
    assert rows(app, Timepoint, Timepoint.id == link["id"]["FU-W6"])[0].status != "completed"
    assert "Call 911" in client.get(url).get_data(as_text=True)
    # a nurse has called the patient and acknowledges: the check-in can be answered now
    nurse_id = make_staff("nurse")
    with app.app_context():
        [pause] = db.session.scalars(select(AutomationPause)).all()
        acknowledge_pause(pause, actor=db.session.get(StaffUser, nurse_id), now=FIXED_NOW)
        db.session.commit()
    assert "Safety questions" in other.get(url).get_data(as_text=True)
    assert other.post(f"{url}/screen", data=clear).status_code == 302
    assert other.post(f"{url}/answers", data=ANSWERS).status_code == 302
    first, second = rows(app, CheckIn)
    assert (first.triage, first.scores) == ("emergency", {})
    assert second.triage == "routine" and second.scores["nprs_back"] == 3
    assert rows(app, Timepoint, Timepoint.id == link["id"]["FU-W6"])[0].status == "completed"


def test_a_browser_that_screened_first_cannot_answer_after_a_red_flag_elsewhere(app, link):
    url = link["url"]["FU-W6"]
    first, second = app.test_client(), app.test_client()
    screened(first, url)  # a clear screen: the questions are open in this browser
    assert "How you are doing" in first.get(url).get_data(as_text=True)
    screened(second, url, rf_saddle_numbness="new")
    assert first.post(f"{url}/answers", data=ANSWERS).status_code == 302
    assert "Call 911" in first.get(url).get_data(as_text=True)
    [row] = rows(app, CheckIn)
    assert row.triage == "emergency" and row.scores == {}


def test_an_acknowledged_red_flag_stays_acknowledged_when_another_point_raises_one(
    app, link, make_staff
):
    from clinic.followup.services import acknowledge_pause
    from clinic.models import StaffUser

    nurse_id = make_staff("nurse")
    week6, month3 = link["url"]["FU-W6"], link["url"]["FU-M3"]
    screened(app.test_client(), week6, rf_fever="worsening")
    with app.app_context():
        [pause] = db.session.scalars(select(AutomationPause)).all()
        acknowledge_pause(pause, actor=db.session.get(StaffUser, nurse_id), now=FIXED_NOW)
        db.session.commit()
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=5)
    try:
        screened(app.test_client(), month3, rf_bowel="new")  # a new red flag, a new pause
        assert count(app, AutomationPause, AutomationPause.acknowledged_at.is_(None)) == 1
        client = app.test_client()
        verified(client, week6)
        page = client.get(week6).get_data(as_text=True)
        assert "Safety questions" in page and "Please call our office today" not in page
        other = app.test_client()
        verified(other, month3)
        assert "Call 911" in other.get(month3).get_data(as_text=True)
    finally:
        app.config["CLINIC_NOW"] = FIXED_NOW


def test_a_longstanding_answer_does_not_fire(app, client, link):
    url = link["url"]["FU-W6"]
    screened(client, url, rf_bowel="longstanding")
    assert "How you are doing" in client.get(url).get_data(as_text=True)
    [row] = rows(app, CheckIn)
    assert row.triage == "routine" and row.red_flags == []
    assert row.answers["rf_bowel"] == "longstanding"
    assert (
        count(app, AutomationPause) == 0
        and count(app, StaffTask, StaffTask.kind == "red_flag_checkin") == 0
    )


def test_wound_items_only_at_day_1_and_day_10(app, client, link):
    for code, asked in (("FU-D1", True), ("FU-D10", True), ("FU-W6", False), ("FU-M3", False)):
        c = app.test_client()
        verified(c, link["url"][code])
        html = c.get(link["url"][code]).get_data(as_text=True)
        assert ('name="wound_bleeding"' in html) is asked, code
    c = app.test_client()
    verified(c, link["url"]["FU-D1"])
    page = c.post(f"{link['url']['FU-D1']}/screen", data=SCREEN_CLEAR)  # wound items missing
    assert page.status_code == 422 and 'href="#wound_drainage"' in page.get_data(as_text=True)
    assert count(app, CheckIn) == 0


def test_bleeding_through_the_dressing_is_urgent(app, client, link):
    url = link["url"]["FU-D1"]
    screened(client, url, wound=True, wound_bleeding="yes")
    assert "Please call our office today" in client.get(url).get_data(as_text=True)
    [row] = rows(app, CheckIn)
    assert row.triage == "urgent"
    assert row.red_flags == [{"field": "wound_bleeding", "tier": "urgent", "answer": "yes"}]
    assert count(app, Notification, Notification.kind == "staff_alert") == 1


def test_a_screen_answer_must_be_one_of_the_choices(app, client, link):
    url = link["url"]["FU-W6"]
    verified(client, url)
    page = client.post(f"{url}/screen", data={**SCREEN_CLEAR, "rf_bowel": "yes please"})
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert 'href="#rf_bowel"' in html and "Choose one of the answers shown." in html
    assert 'value="no" checked' in html  # the other answers are kept on the page
    assert count(app, CheckIn) == 0


# -- the answers --------------------------------------------------------------------------------


def test_the_routine_checkin_is_scored_against_the_intake(app, client, link):
    url, tp = link["url"]["FU-W6"], link["id"]["FU-W6"]
    screened(client, url)
    page = client.get(url)
    html = page.get_data(as_text=True)
    for field in ANSWERS:
        assert f'for="{field}"' in html or "<legend>" in html
    assert "odi_1" not in html and "wound_clean_dry" not in html
    response = client.post(f"{url}/answers", data=ANSWERS)
    assert response.status_code == 302 and response.location == url
    assert "we have your answers" in client.get(url).get_data(as_text=True)
    [row] = rows(app, CheckIn)
    # baseline from the example intake: back 6, leg 7, walking 5, standing 10
    assert row.scores == {
        "nprs_back": 3,
        "nprs_leg": 6,
        "walk_minutes": 20,
        "stand_minutes": 12,
        "global_change": 6,
        "odi_pct": None,
    }
    assert row.responders == {
        "nprs_back": True,
        "nprs_leg": False,
        "odi": None,
        "walk_minutes": True,
        "stand_minutes": False,
    }
    assert row.answers == {**SCREEN_CLEAR, **{k: int(v) for k, v in ANSWERS.items()}}
    assert row.scoring_version == service.outcomes().version
    assert row.form_version.startswith("checkin-") and row.triage == "routine"
    assert row.submitted_at == FIXED_NOW
    [timepoint] = rows(app, Timepoint, Timepoint.id == tp)
    assert timepoint.status == "completed" and timepoint.completed_at == FIXED_NOW
    messages = rows(
        app, Notification, Notification.cause_type == "timepoint", Notification.cause_id == tp
    )
    assert messages and {(m.status, m.last_error) for m in messages} == {
        ("cancelled", "check-in answered")
    }
    other = rows(
        app, Notification, Notification.cause_type == "timepoint", Notification.cause_id != tp
    )
    assert {m.status for m in other} == {"pending"}
    assert count(app, AuditEvent, AuditEvent.reason == "check-in answered") == 1
    # the link now only says thank you; nothing can be sent twice
    again = app.test_client()
    html = again.get(url).get_data(as_text=True)
    assert "already answered" in html
    assert again.post(f"{url}/identity", data={"date_of_birth": DOB}).status_code == 200
    assert client.post(f"{url}/answers", data=ANSWERS).status_code == 200
    assert count(app, CheckIn) == 1


def test_the_baseline_is_the_intake_before_the_procedure(app, client, link, make_request):
    """T0 is the date of service (Nov 23): a request the patient sends that evening still
    counts, one after midnight in the clinic's zone does not re-baseline the check-in (the
    clinician decides that), whatever the UTC date says."""
    late_evening = datetime.fromisoformat("2026-11-23T23:30:00-05:00")  # Nov 24 in UTC
    on_the_day = make_request(now=late_evening, nprs_back_now=8)
    after = make_request(now=late_evening + timedelta(hours=1), nprs_back_now=2)
    for request_id in (on_the_day, after):
        [request] = rows(app, ConsultationRequest, ConsultationRequest.id == request_id)
        assert request.patient_id == link["patient_id"]
    url = link["url"]["FU-W6"]
    screened(client, url)
    assert client.post(f"{url}/answers", data={**ANSWERS, "nprs_back": "5"}).status_code == 302
    [row] = rows(app, CheckIn)
    # 8 -> 5 improves by 3 points; against the example intake (6) or the later one (2) it doesn't
    assert row.responders["nprs_back"] is True, row.responders


def test_no_baseline_without_an_intake_before_the_procedure(app, client, make_request):
    """The only intake came after the procedure: the check-in is stored, its changes unknown."""
    request_id = make_request(now=FIXED_NOW - timedelta(days=2))
    url = planned_links(app, request_id, date(2026, 11, 10))["url"]["FU-W6"]
    screened(client, url)
    assert client.post(f"{url}/answers", data=ANSWERS).status_code == 302
    [row] = rows(app, CheckIn)
    assert row.scores["nprs_back"] == 3
    assert set(row.responders.values()) == {None}, row.responders


def test_the_values_at_their_limits_are_accepted(app, client, link):
    url = link["url"]["FU-W6"]
    screened(client, url)
    values = {
        "nprs_back": "0",
        "nprs_leg": "10",
        "walk_minutes": "240",
        "stand_minutes": "0",
        "global_change": "1",
    }
    assert client.post(f"{url}/answers", data=values).status_code == 302
    [row] = rows(app, CheckIn)
    assert row.scores["nprs_leg"] == 10 and row.scores["walk_minutes"] == 240
    assert row.scores["global_change"] == 1
    assert row.responders["stand_minutes"] is False


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nprs_back", "11", "Enter a whole number from 0 to 10."),
        ("nprs_back", "-1", "Enter a whole number from 0 to 10."),
        ("nprs_leg", "5.5", "Enter a whole number from 0 to 10."),
        ("nprs_leg", "", "Enter a whole number from 0 to 10."),
        ("walk_minutes", "241", "Enter a whole number from 0 to 240."),
        ("stand_minutes", "ten", "Enter a whole number from 0 to 240."),
        ("stand_minutes", "9" * 400, "Enter a whole number from 0 to 240."),
        ("global_change", "0", "Choose one of the answers shown."),
        ("global_change", "8", "Choose one of the answers shown."),
        ("global_change", "", "Choose an answer."),
    ],
)
def test_each_bad_value_gets_its_message_and_loses_nothing(
    app, client, link, field, value, message
):
    url = link["url"]["FU-W6"]
    screened(client, url, rf_fever="longstanding")
    page = client.post(f"{url}/answers", data={**ANSWERS, field: value})
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert f'href="#{field}"' in html and message in html
    assert f'id="{field}-error"' in html
    others = [f for f in ANSWERS if f != field and f != "global_change"]
    for other in others:
        assert f'value="{ANSWERS[other]}"' in html  # what was typed is still there
    [row] = rows(app, CheckIn)  # the screen is still saved, nothing scored yet
    assert row.answers["rf_fever"] == "longstanding" and row.scores == {}
    assert client.post(f"{url}/answers", data=ANSWERS).status_code == 302
    assert rows(app, CheckIn)[0].scores["nprs_back"] == 3


def test_wound_question_is_asked_and_required_at_day_1(app, client, link):
    url = link["url"]["FU-D1"]
    screened(client, url, wound=True)
    assert 'name="wound_clean_dry"' in client.get(url).get_data(as_text=True)
    page = client.post(f"{url}/answers", data=ANSWERS)
    assert page.status_code == 422 and 'href="#wound_clean_dry"' in page.get_data(as_text=True)
    assert (
        client.post(f"{url}/answers", data={**ANSWERS, "wound_clean_dry": "yes"}).status_code == 302
    )
    [row] = rows(app, CheckIn)
    assert row.answers["wound_clean_dry"] == "yes" and row.answers["wound_bleeding"] == "no"
    assert rows(app, StaffTask, StaffTask.kind == "wound_review") == []


@pytest.mark.parametrize("point", ["FU-D1", "FU-D10"])
def test_a_wound_that_is_not_clean_and_dry_opens_a_nurse_task(app, client, link, point):
    """Old code stored the answer and told no one: it is not a red flag (the screen's bleeding,
    drainage and redness items are), but a nurse should call."""
    url = link["url"][point]
    screened(client, url, wound=True)
    response = client.post(f"{url}/answers", data={**ANSWERS, "wound_clean_dry": "no"})
    assert response.status_code == 302
    [row] = rows(app, CheckIn)
    [task] = rows(app, StaffTask, StaffTask.kind == "wound_review")
    assert (task.cause_type, task.cause_id, task.patient_id) == ("checkin", row.id, row.patient_id)
    assert task.title == service.WOUND_TASK_TITLE and task.due_at == FIXED_NOW
    assert rows(app, AutomationPause) == []  # not a red flag: the follow-up goes on


# -- the ODI, only from a licensed pack -----------------------------------------------------------


def test_no_odi_section_without_a_pack(app, client, link):
    url = link["url"]["FU-W6"]
    screened(client, url)
    html = client.get(url).get_data(as_text=True)
    assert "odi_" not in html and "daily activities" not in html
    client.post(f"{url}/answers", data={**ANSWERS, "odi_1": "3"})
    [row] = rows(app, CheckIn)
    assert "odi_1" not in row.answers and row.scores["odi_pct"] is None


def test_odi_from_a_licensed_pack_is_scored(app, client, link, odi_pack):
    with app.app_context():
        request = db.session.get(ConsultationRequest, link["request_id"])
        request.clinician_entries = {"odi_external_score": 50}
        db.session.commit()
    url = link["url"]["FU-W6"]
    screened(client, url)
    html = client.get(url).get_data(as_text=True)
    assert (
        "Placeholder section 1" in html and '<label for="odi_1-6">Placeholder 1.5</label>' in html
    )
    items = {f"odi_{i}": "2" for i in range(1, 10)}  # section 10 left blank: 18/45 = 40 %
    bad = client.post(f"{url}/answers", data={**ANSWERS, **items, "odi_3": "6"})
    assert bad.status_code == 422 and 'href="#odi_3"' in bad.get_data(as_text=True)
    assert client.post(f"{url}/answers", data={**ANSWERS, **items}).status_code == 302
    [row] = rows(app, CheckIn)
    assert row.scores["odi_pct"] == 40 and row.responders["odi"] is True
    assert row.answers["odi_10"] is None and row.answers["odi_version"] == "test-pack-1"
    assert not any("Placeholder" in str(v) for v in row.answers.values())


def test_the_odi_answered_at_intake_is_the_check_ins_baseline(app, client, link, odi_pack):
    """Old code took a baseline ODI only from a score staff typed in from a paper form."""
    with app.app_context():
        request = db.session.get(ConsultationRequest, link["request_id"])
        request.answers = {**request.answers, "odi_pct": 50, "odi_version": "test-pack-1"}
        db.session.commit()
    url = link["url"]["FU-W6"]
    screened(client, url)
    items = {f"odi_{i}": "2" for i in range(1, 11)}  # 20/50 = 40 %
    assert client.post(f"{url}/answers", data={**ANSWERS, **items}).status_code == 302
    [row] = rows(app, CheckIn)
    assert row.scores["odi_pct"] == 40 and row.responders["odi"] is True
    baseline, _ = _baseline(app, link)
    assert baseline["odi_pct"] == 50
    with app.app_context():  # a score staff entered still comes first
        request = db.session.get(ConsultationRequest, link["request_id"])
        request.clinician_entries = {"odi_external_score": 35}
        db.session.commit()
    assert _baseline(app, link)[0]["odi_pct"] == 35


def _baseline(app, link):
    with app.app_context():
        request = db.session.get(ConsultationRequest, link["request_id"])
        return service.baseline_for(request.patient_id, date(2026, 11, 23))


@pytest.mark.parametrize("point", ["FU-D1", "FU-D10"])
def test_day_1_and_day_10_do_not_ask_the_odi_even_with_a_pack(app, client, link, odi_pack, point):
    """The plan (domain spec 2.1) asks the ODI from 6 weeks on; the early checks ask about the
    wound. Old code put the ten ODI sections on every check-in once a pack was loaded."""
    url = link["url"][point]
    screened(client, url, wound=True)
    html = client.get(url).get_data(as_text=True)
    assert "wound_clean_dry" in html
    assert "odi_1" not in html and "Placeholder section" not in html
    items = {f"odi_{i}": "2" for i in range(1, 11)}
    response = client.post(f"{url}/answers", data={**ANSWERS, **items, "wound_clean_dry": "yes"})
    assert response.status_code == 302
    [row] = rows(app, CheckIn)
    assert not any(k.startswith("odi_") for k in row.answers)
    assert row.scores["odi_pct"] is None and row.responders["odi"] is None


def test_the_plan_says_which_timepoints_ask_the_odi(app, link):
    asks = {tp.code: tp.odi_questions for tp in rows(app, Timepoint)}
    assert asks == {
        "FU-D1": False,
        "FU-D10": False,
        "FU-W6": True,
        "FU-M3": True,
        "FU-M6": True,
        "FU-Y1": True,
        "FU-Y2": True,
    }


def test_the_migration_stops_existing_day_1_and_10_timepoints_asking_the_odi(app, link):
    """Timepoints planned before the column existed: day 1 and day 10 stop asking it."""
    from flask_migrate import downgrade, upgrade

    from tests.conftest import ROOT

    directory = str(ROOT / "migrations")
    with app.app_context():
        db.session.remove()
        downgrade(directory=directory, revision="5d1e7a9c2b40")
        try:
            assert "odi_questions" not in {
                c["name"] for c in sa_inspect(db.engine).get_columns("followup_timepoint")
            }
        finally:
            upgrade(directory=directory)
    asks = {tp.code: tp.odi_questions for tp in rows(app, Timepoint)}
    assert asks["FU-D1"] is False and asks["FU-D10"] is False
    assert all(asks[code] for code in ("FU-W6", "FU-M3", "FU-M6", "FU-Y1", "FU-Y2"))


def test_too_few_odi_sections_are_stored_unscored(app, client, link, odi_pack):
    url = link["url"]["FU-W6"]
    screened(client, url)
    items = {f"odi_{i}": "1" for i in range(1, 8)}
    assert client.post(f"{url}/answers", data={**ANSWERS, **items}).status_code == 302
    [row] = rows(app, CheckIn)
    assert row.scores["odi_pct"] is None and row.answers["odi_7"] == 1


# -- links, methods, URLs ---------------------------------------------------------------------


def test_forged_and_expired_links(app, client, link, monkeypatch):
    from clinic.tokens import make_token

    url = link["url"]["FU-W6"]
    tp = link["id"]["FU-W6"]
    with app.app_context():
        other_purpose = make_token("booking", {"t": tp})
        missing = make_token("checkin", {"t": 2**31 - 1})
        huge = make_token("checkin", {"t": 2**70})
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    for bad in (
        f"/checkin/{other_purpose}",
        f"/checkin/{missing}",
        f"/checkin/{huge}",
        tampered,
        "/checkin/x",
    ):
        page = client.get(bad)
        assert page.status_code == 404 and "has expired or is not valid" in page.get_data(
            as_text=True
        )
        assert client.post(f"{bad}/identity", data={"date_of_birth": DOB}).status_code == 404
    monkeypatch.setattr(
        "itsdangerous.timed.TimestampSigner.get_timestamp",
        lambda self: int(time.time()) - 121 * 86400,
    )
    with app.app_context():
        old = make_token("checkin", {"t": tp})
    monkeypatch.undo()
    assert client.get(f"/checkin/{old}").status_code == 404
    assert count(app, AuditEvent, AuditEvent.action == service.IDENTITY_ACTION) == 0


def test_a_cancelled_followup_link_is_gone(app, client, link):
    with app.app_context():
        db.session.get(Timepoint, link["id"]["FU-W6"]).status = "cancelled"
        db.session.commit()
    page = client.get(link["url"]["FU-W6"])
    assert page.status_code == 410 and "call us" in page.get_data(as_text=True).lower()


def test_state_changes_only_on_post(app, client, link):
    url = link["url"]["FU-W6"]
    for path in ("identity", "screen", "answers"):
        # opened from the address bar after an error page: back to the check-in, no change
        response = client.get(f"{url}/{path}", query_string={"date_of_birth": DOB})
        assert response.status_code == 302 and response.location == url
    assert count(app, AuditEvent, AuditEvent.action == service.IDENTITY_ACTION) == 0
    verified(client, url)
    client.get(url, query_string={**SCREEN_CLEAR, "rf_bowel": "new"})
    assert (
        count(app, CheckIn) == 0
        and count(app, Notification, Notification.kind == "staff_alert") == 0
    )


def test_posts_need_the_csrf_token(app, client, link, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    response = client.post(f"{link['url']['FU-W6']}/identity", data={"date_of_birth": DOB})
    assert response.status_code == 400
    assert count(app, AuditEvent, AuditEvent.action == service.IDENTITY_ACTION) == 0


def test_no_answer_in_any_url_or_cookie(app, client, link, odi_pack):
    url = link["url"]["FU-D1"]
    seen: list[str] = []

    def post(path, data):
        response = client.post(path, data=data)
        seen.append(response.location or "")
        return response

    post(f"{url}/identity", {"date_of_birth": DOB})
    html = client.get(url).get_data(as_text=True)
    post(f"{url}/screen", {**SCREEN_CLEAR, **WOUND_CLEAR, "rf_fever": "longstanding"})
    html += client.get(url).get_data(as_text=True)
    post(f"{url}/answers", {**ANSWERS, "wound_clean_dry": "no", "odi_1": "4"})
    html += client.get(url).get_data(as_text=True)
    assert seen == [url, url, url]
    targets = re.findall(r'(?:action|href)="([^"]*)"', html)
    assert targets and not [t for t in targets if "?" in t or "=" in t]
    cookie = client.get_cookie("clinic_session")
    state = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert set(state) == {"checkin"}
    assert set(state["checkin"]) <= {"t", "at", "c", "done"}
    assert all(isinstance(v, int | bool | None) for v in state["checkin"].values())
    assert "1952" not in cookie.value and "longstanding" not in json.dumps(state)


def test_the_pages_carry_no_third_party_assets(client, link):
    url = link["url"]["FU-W6"]
    pages = [client.get(url).get_data(as_text=True)]
    verified(client, url)
    pages.append(client.get(url).get_data(as_text=True))
    for html in pages:
        sources = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
