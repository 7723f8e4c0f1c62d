"""The headers every email carries: a Date, encoded words where needed, nothing injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime

import pytest

from clinic import email


def _build(app, **overrides):
    args = {"to": "pat@example.com", "subject": "Your appointment"} | overrides
    with app.test_request_context():
        return email.build_message("missed_appointment", args["to"], args["subject"])


def _head(msg) -> bytes:
    return msg.as_bytes().split(b"\n\n", 1)[0]


def test_every_message_has_a_date_header(app):
    msg = _build(app)
    sent = parsedate_to_datetime(msg["Date"])
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=1)
    assert _head(msg).count(b"\nDate: ") == 1


def test_plain_headers_read_back_as_parsed_headers(app):
    msg = _build(app)
    assert msg["To"].addresses[0].addr_spec == "pat@example.com"
    assert msg["From"].addresses[0].addr_spec == "no-reply@clinic.example"
    assert msg["Subject"] == "Your appointment"


def test_a_clinic_name_with_accents_is_sent_as_encoded_words(app):
    app.config["MAIL_FROM"] = "Clínica del Río <no-reply@clinic.example>"
    msg = _build(app, subject="Su cita en la Clínica")
    head = _head(msg)
    assert head.isascii()
    assert b"=?utf-8?" in head
    back = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert back["From"].addresses[0].display_name == "Clínica del Río"
    assert back["Subject"] == "Su cita en la Clínica"


@pytest.mark.parametrize("bad", ["Hello\r\nBcc: x@evil.example", "Hello\nBcc: x@evil.example"])
def test_a_line_break_in_a_value_is_refused_not_turned_into_a_header(app, bad):
    with pytest.raises(ValueError):
        _build(app, subject=bad)
    with pytest.raises(ValueError):
        _build(app, to=f"pat@example.com{bad[5:]}")


def test_an_overlong_plain_value_is_folded_within_the_line_limit(app):
    msg = _build(app, subject="word " * 300)
    assert all(len(line) <= 998 for line in _head(msg).split(b"\n"))
    back = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert back["Subject"].split() == ["word"] * 300
