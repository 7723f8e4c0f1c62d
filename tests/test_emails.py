"""Emails end to end: a real Celery worker over Redis delivering to a real SMTP server."""

import re
import time

import pytest

from tests.conftest import example_values

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


def test_acknowledgement_email(app, client, worker, inbox):
    values = example_values(med_list="Eliquis 5 mg", rf_fever="no")
    assert client.post(URL, json=values).status_code == 201
    [msg] = inbox.wait_for(1)
    assert msg["To"] == "margaret.okafor@example.com"
    assert msg["Message-ID"]
    text = visible_text(msg)
    assert "Hello Margaret" in text
    assert "Tuesday, November 24, 2026" in text
    assert "(555) 010-0100" in text and "What happens next" in text
    assert "not for emergencies" in text
    assert_nothing_clinical(text, "Okafor", "1952", "Medicare")
    assert msg.get_body(("html",)) is not None


def test_emergency_alerts_staff_without_patient_details(app, client, worker, inbox):
    values = example_values(rf_bowel="new")
    assert client.post(URL, json=values).status_code == 201
    messages = inbox.wait_for(2)
    alert = next(m for m in messages if m["To"] == "alerts@clinic.test")
    patient = next(m for m in messages if m["To"] != "alerts@clinic.test")
    assert alert["Subject"] == "Urgent intake needs review - log in"
    text = visible_text(alert)
    assert "http://clinic.test/staff/requests" in text
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
    time.sleep(0.5)  # a wrongly sent acknowledgement would have arrived by now
    assert len(inbox.messages) == 1


def test_smtp_refusing_for_a_while_then_delivered(app, client, worker, inbox):
    inbox.reply = "451 4.3.0 try again later"
    assert client.post(URL, json=example_values()).status_code == 201
    time.sleep(1.5)  # at least one refused attempt
    assert inbox.messages == []
    inbox.reply = None
    [msg] = inbox.wait_for(1, timeout=30)
    assert msg["To"] == "margaret.okafor@example.com"


def test_permanent_refusal_is_not_retried(app, client, worker, inbox):
    inbox.reply = "550 5.1.1 no such mailbox"
    assert client.post(URL, json=example_values()).status_code == 201
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if "gave up" in worker.log_path.read_text():
            break
        time.sleep(0.1)
    log = worker.log_path.read_text()
    assert "intake.send_acknowledgement gave up: refused (550)" in log
    assert "margaret" not in log.lower()
    inbox.reply = None
    time.sleep(1)
    assert inbox.messages == []


def test_tasks_get_ids_only(app, client, monkeypatch):
    """Nothing clinical or personal travels through the broker: only the request id."""
    sent = []
    celery = app.extensions["celery"]
    for name in ("intake.send_acknowledgement", "intake.alert_staff"):
        monkeypatch.setattr(
            celery.tasks[name],
            "apply_async",
            lambda args=None, _n=name, **kw: sent.append((_n, args)),
        )
    body = client.post(URL, json=example_values(rf_bowel="new")).get_json()
    assert sorted(sent) == [
        ("intake.alert_staff", (body["id"],)),
        ("intake.send_acknowledgement", (body["id"],)),
    ]


def test_broker_down_still_saves_the_request(app, client, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    celery = app.extensions["celery"]
    monkeypatch.setattr(celery.tasks["intake.send_acknowledgement"], "apply_async", refuse)
    response = client.post(URL, json=example_values())
    assert response.status_code == 201
    assert "could not enqueue intake.send_acknowledgement" in caplog.text
