"""Issue line 10: every email template rendered and checked for clinical words in subject,
bodies, headers, calendar part and every URL; task arguments are ids only."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from clinic.extensions import db
from clinic.notifications import emails, services
from clinic.notifications.models import STAFF_KINDS, Notification
from tests.conftest import FIXED_NOW, example_values
from tests.notifications.conftest import book, record_procedure

DENY = [
    "stenosis",
    "spinal",
    "spine",
    "claudication",
    "mild",
    "decompression",
    "procedure",
    "laminotomy",
    "laminectomy",
    "surgery",
    "eliquis",
    "warfarin",
    "apixaban",
    "clopidogrel",
    "aspirin",
    "blood thinner",
    "score",
    "odi",
    "nprs",
    "red flag",
    "red-flag",
    "bladder",
    "bowel",
    "numbness",
    "diagnosis",
    "wound",
]
TEMPLATES = Path(__file__).parents[2] / "clinic/templates/emails"
URL = re.compile(r"https?://[^\s\"'<>]+")


def clinical(text: str) -> list[str]:
    lowered = unquote(text).lower()
    return [w for w in DENY if re.search(rf"\b{re.escape(w)}\b", lowered)]


def everything_in(msg) -> str:
    parts = [f"{k}: {v}" for k, v in msg.items()]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            content = part.get_content()
            parts.append(content.decode() if isinstance(content, bytes) else content)
    return "\n".join(parts)


def token_payloads(text: str) -> list:
    """What the signed tokens in a message's links carry (readable, so ids only)."""
    out = []
    for url in URL.findall(text):
        token = url.rstrip(".,)").rsplit("/", 1)[-1]
        if "." in token:
            payload = token.split(".")[0]
            with contextlib.suppress(Exception):  # not a token
                out.append(URLSafeTimedSerializer("x").load_payload(payload.encode()))
    return out


@pytest.fixture
def every_row(napp, nctx, clinic, headers):
    """A row of every kind in services.TEMPLATES, on realistic causes."""
    client = napp.test_client()
    fd = headers["front_desk"]
    # intakes with an emergency and an urgent answer: acknowledgements and the staff alerts
    for answer in ({"rf_bowel": "new"}, {"rf_night_pain": "new"}):
        intake = client.post("/api/v1/consultation-requests", json=example_values(**answer))
        assert intake.status_code == 201, intake.get_json()
    consult = book(client, fd, clinic, start="2026-11-30T10:00:00-05:00")
    proc = book(client, fd, clinic, start="2026-12-02T09:00:00-05:00", patient=1, code="procedure")
    client.post(
        f"/api/v1/appointments/{consult['id']}/reschedule",
        json={"start": "2026-12-01T10:00:00-05:00"},
        headers=fd,
    )
    record_procedure(client, headers, clinic)
    rows = {}
    for row in db.session.scalars(select(Notification).order_by(Notification.id)):
        rows.setdefault(row.kind, row)
    for kind in ("cancellation", "no_show"):
        rows[kind] = services.create(
            patient_id=clinic["patients"][0],
            kind=kind,
            cause_type="appointment",
            cause_id=consult["id"],
            due_at=FIXED_NOW,
            now=FIXED_NOW,
            routine=kind == "no_show",
        )
    rows["staff_alert"] = services.create(
        patient_id=clinic["patients"][2],
        kind="staff_alert",
        cause_type="timepoint",
        cause_id=rows["checkin"].cause_id,
        due_at=FIXED_NOW,
        now=FIXED_NOW,
    )
    db.session.flush()
    assert proc["id"]
    return rows


def test_every_kind_renders_with_nothing_clinical(every_row):
    email_kinds = {k for k in services.TEMPLATES if k != "checkin_no_response"}
    assert email_kinds <= set(every_row), email_kinds - set(every_row)
    used_templates = set()
    for kind in sorted(email_kinds):
        row = every_row[kind]
        msg = emails.build(row, now=FIXED_NOW)
        used_templates.add(row.template)
        text = everything_in(msg)
        assert clinical(text) == [], (kind, clinical(text))
        for url in URL.findall(text):
            assert clinical(url) == [], (kind, url)
        for payload in token_payloads(text):
            assert isinstance(payload, dict), (kind, payload)
            assert all(isinstance(v, int) or v is None for v in payload.values()), payload
        assert msg["Message-ID"] == row.message_id
        assert len(msg["To"].addresses) == 1
        body = msg.get_body(("plain",)).get_content()
        assert "Hello" in body or kind in STAFF_KINDS
        if kind in STAFF_KINDS:
            assert msg["To"].addresses[0].addr_spec == "alerts@clinic.test"
            for name in ("Pat", "Margaret", "Okafor", "example.com", "1952"):
                assert name not in text, (kind, name)
    # Every template of the notifications is exercised, the staff's and the intake's too.
    assert used_templates >= {
        "appointment_confirmation",
        "appointment_update",
        "appointment_cancellation",
        "appointment_reminder",
        "missed_appointment",
        "checkin_invitation",
        "staff_checkin_alert",
        "intake_acknowledgement",
        "staff_intake_alert",
    }


def test_every_template_file_is_free_of_clinical_words():
    """The raw .txt/.html sources too (the intake's included)."""
    names = sorted(p.name for p in TEMPLATES.iterdir())
    assert names
    for path in TEMPLATES.iterdir():
        assert clinical(path.read_text()) == [], (path.name, clinical(path.read_text()))
    stems = {p.stem for p in TEMPLATES.iterdir() if not p.stem.startswith("_")}
    for stem in stems:
        assert (TEMPLATES / f"{stem}.txt").exists() and (TEMPLATES / f"{stem}.html").exists()


def test_procedure_messages_name_no_visit_kind(every_row):
    """Logistics only: the procedure's notice and reminders point to the link for instructions."""
    for kind in ("procedure_notice", "reminder_48h"):
        msg = emails.build(every_row[kind], now=FIXED_NOW)
        body = msg.get_body(("plain",)).get_content()
        assert "instructions waiting" in body
        calendars = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
        assert len(calendars) == (kind == "procedure_notice")
        for part in calendars:
            content = part.get_content()
            text = content.decode() if isinstance(content, bytes) else content
            assert "SUMMARY:Appointment at" in text and clinical(text) == []


def test_intake_acknowledgement_and_staff_alert_templates(napp, nctx):
    from flask import render_template

    for name, context in (
        ("intake_acknowledgement", {"greeting_name": "Pat", "received": "today", "call_today": 1}),
        ("staff_intake_alert", {"emergency": True, "link": "http://clinic.test/staff/"}),
        ("staff_intake_alert", {"emergency": False, "link": "http://clinic.test/staff/"}),
    ):
        for ext in ("txt", "html"):
            text = render_template(
                f"emails/{name}.{ext}", clinic_phone="1", clinic_name="C", **context
            )
            assert clinical(text) == [], (name, clinical(text))


def test_plan_labels_stay_out_of_patient_mail(every_row):
    plan = json.loads((Path(__file__).parents[2] / "clinic/followup/plan.json").read_text())
    msg = emails.build(every_row["checkin"], now=FIXED_NOW)
    text = everything_in(msg)
    for point in plan["timepoints"]:
        assert point["label"] not in text
