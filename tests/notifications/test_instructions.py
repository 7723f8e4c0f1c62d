"""A procedure's messages say "instructions waiting"; the link they carry shows them."""

from __future__ import annotations

import re

from clinic.extensions import db
from clinic.notifications import emails
from tests.conftest import FIXED_NOW
from tests.notifications.conftest import book, by_kind, rows_for


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def _link(text: str) -> str:
    return re.search(r"http://clinic\.test(/appointments/manage/\S+)", text).group(1)


def test_procedure_reminder_links_to_the_instructions(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-12-02T09:00:00-05:00",
                code="procedure")  # fmt: skip
    with napp.app_context():
        row = by_kind(rows_for("appointment", appt["id"]))["reminder_48h"][0]
        text = _text(emails.build(row, now=FIXED_NOW))
        db.session.rollback()
    assert "You have instructions waiting" in text
    assert "blood thinner" not in text.lower()  # the email itself stays logistics only
    page = client.get(_link(text)).get_data(as_text=True)
    assert "Your instructions" in page
    assert "An adult must drive you home" in page


def test_a_consultation_page_has_no_instructions(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-12-02T09:00:00-05:00")
    with napp.app_context():
        row = by_kind(rows_for("appointment", appt["id"]))["reminder_24h"][0]
        text = _text(emails.build(row, now=FIXED_NOW))
        db.session.rollback()
    assert "instructions waiting" not in text
    page = client.get(_link(text)).get_data(as_text=True)
    assert "Your appointment" in page and "Your instructions" not in page


def test_a_clinic_replaces_the_instructions(napp, clinic, headers, tmp_path):
    from clinic.scheduling import instructions

    own = tmp_path / "instructions.json"
    own.write_text('{"version": "x", "types": {"procedure": ["Bring your reading glasses."]}}')
    napp.config["APPOINTMENT_INSTRUCTIONS_FILE"] = str(own)
    try:
        with napp.test_request_context():
            assert instructions.instructions_for("procedure") == ("Bring your reading glasses.",)
            assert instructions.instructions_for("consultation") == ()
    finally:
        napp.config["APPOINTMENT_INSTRUCTIONS_FILE"] = ""
