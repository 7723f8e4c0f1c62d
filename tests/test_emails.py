"""Emails end to end: a real Celery worker over Redis delivering to a real SMTP server."""

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import FIXED_NOW, example_values

URL = "/api/v1/consultation-requests"
CLINICAL_WORDS = [
    "stenosis",
    "claudication",
    "lss",
    "mild",
    "decompression",
    "spine",
    "spinal",
    "procedure",
    "laminectomy",
    "pild",
    "eliquis",
    "apixaban",
    "warfarin",
    "opioid",
    "blood thinner",
    "nprs",
    "odi",
    "score",
    "red flag",
    "red-flag",
    "bowel",
    "bladder",
    "urine",
    "numbness",
    "fever",
    "pain",
    "weakness",
    "saddle",
    "insurance",
    "medicare",
    "mri",
    "candida",
    "signal",
]


def visible_text(msg) -> str:
    parts = [msg["Subject"]]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


def assert_nothing_clinical(text: str, *extra: str):
    lowered = text.lower()
    for word in [*CLINICAL_WORDS, *extra]:
        assert not re.search(rf"\b{re.escape(word.lower())}\b", lowered), word


@pytest.fixture
def worker(celery_worker, inbox):
    return celery_worker


def dispatch(app, *, later: timedelta = timedelta(0)) -> int:
    """One dispatcher pass (beat's job) ``later`` than now: the pinned test time or the worker's
    clock (which times its retries), whichever is later."""
    from clinic.notifications import dispatcher

    with app.app_context():
        return dispatcher.dispatch(max(datetime.now(UTC), FIXED_NOW) + later).claimed


def rows_of(app, kind: str) -> list:
    from clinic.notifications.models import Notification

    with app.app_context():
        return list(
            app.extensions["sqlalchemy"].session.scalars(
                select(Notification).where(Notification.kind == kind).order_by(Notification.id)
            )
        )


def acknowledgements(app) -> list:
    return rows_of(app, "intake_acknowledgement")


def staff_alerts(app) -> list:
    return rows_of(app, "intake_alert_emergency") + rows_of(app, "intake_alert_urgent")


def test_acknowledgement_email(app, client, worker, inbox):
    values = example_values(med_list="Eliquis 5 mg", rf_fever="no")
    assert client.post(URL, json=values).status_code == 201
    assert inbox.messages == []  # a message row, committed with the request; not yet sent
    assert dispatch(app) == 1
    [msg] = inbox.wait_for(1)
    assert msg["To"] == "margaret.okafor@example.com"
    [row] = acknowledgements(app)
    assert msg["Message-ID"] == row.message_id
    text = visible_text(msg)
    assert "Hello Margaret" in text
    assert "Tuesday, November 24, 2026" in text
    assert "(555) 010-0100" in text and "What happens next" in text
    assert "not for emergencies" in text
    assert_nothing_clinical(text, "Okafor", "1952", "Medicare")
    assert msg.get_body(("html",)) is not None


def test_acknowledgement_leaves_the_name_out_when_names_are_off(app, make_request, monkeypatch):
    from clinic.extensions import db
    from clinic.intake import emails
    from clinic.intake.models import ConsultationRequest

    monkeypatch.setitem(app.config, "NOTIFY_USE_FIRST_NAME", False)
    with app.app_context(), app.test_request_context():
        msg = emails.acknowledgement(db.session.get(ConsultationRequest, make_request()))
    text = visible_text(msg)
    assert "Hello," in text and "Margaret" not in text


@pytest.mark.parametrize(
    ("answers", "says", "never"),
    [
        ({}, ["What happens next", "two business days"], ["Please call us today"]),
        (
            {"rf_night_pain": "worsening"},
            ["Please call us today at (555) 010-0100"],
            ["two business days", "What happens next"],
        ),
        (
            {"rf_bowel": "new"},
            ["A member of our team will look at your request and contact you."],
            ["two business days", "What happens next", "Please call us today"],
        ),
    ],
    ids=["routine", "urgent", "emergency"],
)
def test_the_acknowledgement_gives_the_routine_timetable_only_to_routine_requests(
    app, make_request, answers, says, never
):
    """Old code told a patient whose answers sent them to emergency care that the team would
    be in touch within two business days."""
    from clinic.extensions import db
    from clinic.intake import emails
    from clinic.intake.models import ConsultationRequest

    with app.app_context(), app.test_request_context():
        request = db.session.get(ConsultationRequest, make_request(**answers))
        msg = emails.acknowledgement(request)
    for part in ("plain", "html"):
        text = visible_text(msg) if part == "plain" else msg.get_body(("html",)).get_content()
        for phrase in says:
            assert phrase in text, (part, phrase)
        for phrase in never:
            assert phrase not in text, (part, phrase)
        assert "not for emergencies" in text
        assert_nothing_clinical(text)


def test_emergency_alerts_staff_without_patient_details(app, client, worker, inbox):
    values = example_values(rf_bowel="new")
    assert client.post(URL, json=values).status_code == 201
    inbox.wait_for(1)  # the alert goes at once, without waiting for the dispatcher
    dispatch(app)
    messages = inbox.wait_for(2)
    alert = next(m for m in messages if m["To"] == "alerts@clinic.test")
    patient = next(m for m in messages if m["To"] != "alerts@clinic.test")
    assert alert["Subject"] == "Urgent intake needs review - log in"
    text = visible_text(alert)
    [row] = staff_alerts(app)
    assert alert["Message-ID"] == row.message_id
    assert f"http://clinic.test/staff/requests/{row.cause_id}" in text
    assert_nothing_clinical(text, "Margaret", "Okafor", "example.com", "1952", "emergency")
    assert_nothing_clinical(visible_text(patient))


def test_urgent_alert_and_no_email_without_consent(app, client, worker, inbox):
    values = example_values(
        rf_night_pain="new", preferred_contact="phone_call", consent_email=False
    )
    assert client.post(URL, json=values).status_code == 201
    [alert] = inbox.wait_for(1)
    assert alert["To"] == "alerts@clinic.test"
    assert alert["Subject"] == "Same-day callback needed - log in"
    assert acknowledgements(app) == []  # no consent: no acknowledgement at all
    assert dispatch(app) == 0
    assert len(inbox.messages) == 1


def wait_for_row(app, predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = acknowledgements(app)
        if rows and predicate(rows[0]):
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"acknowledgement row never matched: {acknowledgements(app)}")


def test_smtp_refusing_for_a_while_then_delivered(app, client, worker, inbox):
    inbox.reply = "451 4.3.0 try again later"
    assert client.post(URL, json=example_values()).status_code == 201
    dispatch(app)
    row = wait_for_row(app, lambda r: r.status == "pending" and r.attempts == 1)
    assert row.last_error == "deferred (451)"  # a code, never an address
    assert inbox.messages == []
    inbox.reply = None
    assert dispatch(app, later=timedelta(minutes=5)) == 1  # past the backoff
    [msg] = inbox.wait_for(1, timeout=30)
    assert msg["To"] == "margaret.okafor@example.com"
    assert wait_for_row(app, lambda r: r.status == "sent").attempts == 2


def test_permanent_refusal_is_not_retried(app, client, worker, inbox):
    inbox.reply = "550 5.1.1 no such mailbox"
    assert client.post(URL, json=example_values()).status_code == 201
    dispatch(app)
    row = wait_for_row(app, lambda r: r.status == "failed")
    assert row.last_error == "refused (550) 5.1.1" and row.attempts == 1
    assert "margaret" not in worker.log_path.read_text().lower()
    inbox.reply = None
    assert dispatch(app, later=timedelta(hours=2)) == 0
    assert inbox.messages == []


def test_tasks_get_ids_only(app, client, monkeypatch):
    """Nothing clinical or personal travels through the broker: only message row ids."""
    sent = []
    task = app.extensions["celery"].tasks["notifications.send"]
    monkeypatch.setattr(task, "apply_async", lambda args=None, **kw: sent.append(args))
    assert client.post(URL, json=example_values(rf_bowel="new")).status_code == 201
    [alert] = staff_alerts(app)
    assert sent == [(alert.id,)]  # the staff alert, at once
    sent.clear()
    from clinic.notifications import dispatcher

    with app.app_context():
        dispatcher.dispatch(FIXED_NOW)  # the alert's claim is not stale yet: not sent again
    [row] = acknowledgements(app)
    assert sent == [(row.id,)]


def test_broker_down_still_saves_the_request(app, client, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    celery = app.extensions["celery"]
    monkeypatch.setattr(celery.tasks["notifications.send"], "apply_async", refuse)
    response = client.post(URL, json=example_values(rf_night_pain="new"))
    assert response.status_code == 201
    # the acknowledgement and the staff alert are rows committed with the request: the outage
    # loses nothing (the dispatcher sends them; tests/test_intake_alert.py)
    [alert] = staff_alerts(app)
    assert f"could not enqueue notification {alert.id}: ConnectionError" in caplog.text
    assert alert.status == "sending" and alert.cause_id == response.get_json()["id"]
    [row] = acknowledgements(app)
    assert row.status == "pending" and row.cause_id == response.get_json()["id"]
