"""Domain spec 2.2, C-72: the 72 h reminder asks a patient who has not sent the new-patient form
(booked by staff over the phone, say) to fill it in; a patient who has sent it is not asked."""

from __future__ import annotations

import json

from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.intake.rules import TRIAGE_RANK, Triage
from clinic.notifications import emails
from clinic.notifications.schedules import PACKAGED
from tests.conftest import FIXED_NOW
from tests.notifications.conftest import book, by_kind, rows_for

START = "2026-12-02T09:00:00-05:00"
PROMPT = "Please fill in our new-patient form before your visit"


def _texts(row) -> tuple[str, str]:
    msg = emails.build(row, now=FIXED_NOW)
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def _reminders(napp, clinic, headers, patient=0):
    appt = book(napp.test_client(), headers["front_desk"], clinic, start=START, patient=patient)
    return appt, by_kind(rows_for("appointment", appt["id"]))


def test_the_72h_reminder_asks_for_the_form_when_none_was_sent(nctx, napp, clinic, headers):
    _, rows = _reminders(napp, clinic, headers)
    text, html = _texts(rows["reminder_72h"][0])
    assert PROMPT in text
    assert "http://clinic.test/intake\n" in text
    assert 'href="http://clinic.test/intake"' in html
    # the link opens the form's first step
    page = napp.test_client().get("/intake")
    assert page.status_code == 200 and "<form" in page.get_data(as_text=True)
    # the 24 h reminder and the confirmation stay short
    assert PROMPT not in _texts(rows["reminder_24h"][0])[0]
    assert PROMPT not in _texts(rows["confirmation"][0])[0]


def test_a_patient_who_sent_the_form_is_not_asked_again(nctx, napp, clinic, headers):
    appt, rows = _reminders(napp, clinic, headers, patient=1)
    partial = ConsultationRequest(
        patient_id=appt["patient_id"],
        complete=False,  # an emergency answer saved early is not the whole form
        source="patient",
        triage=Triage.EMERGENCY,
        triage_rank=TRIAGE_RANK[Triage.EMERGENCY],
        form_version="test",
        rules_version="test",
        answers={},
        submitted_at=FIXED_NOW,
        updated_at=FIXED_NOW,
    )
    db.session.add(partial)
    db.session.commit()
    assert PROMPT in _texts(rows["reminder_72h"][0])[0]
    partial.complete = True
    db.session.commit()
    assert PROMPT not in _texts(rows["reminder_72h"][0])[0]


def test_the_prompt_follows_the_clinics_schedule(nctx, napp, clinic, headers, tmp_path):
    data = json.loads(PACKAGED.read_text())
    for step in data["appointment_types"]["consultation"]:
        step.pop("forms_if_incomplete", None)
    own = tmp_path / "schedules.json"
    own.write_text(json.dumps(data))
    napp.config["NOTIFY_SCHEDULES_FILE"] = str(own)
    try:
        _, rows = _reminders(napp, clinic, headers)
        assert PROMPT not in _texts(rows["reminder_72h"][0])[0]
    finally:
        napp.config["NOTIFY_SCHEDULES_FILE"] = ""
