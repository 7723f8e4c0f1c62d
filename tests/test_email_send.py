"""How a message is composed and handed to the server: both bodies and the envelope intact,
whichever way (the quick path for one plain address, send_message for the rest)."""

from __future__ import annotations

from clinic import email


def _build(app, to="pat@example.com", **context):
    with app.test_request_context():
        return email.build_message("missed_appointment", to, "Your appointment", **context)


def _send(app, msg):
    with app.app_context():
        email.close_connection()
        email.send(msg)
        email.close_connection()


def test_both_bodies_and_the_envelope_arrive_as_built(app, inbox):
    msg = _build(app, greeting="Hello Zoë,")
    assert email._envelope(msg) == ("no-reply@clinic.example", "pat@example.com")
    _send(app, msg)
    (got,) = inbox.wait_for(1)
    assert inbox.envelopes == [("no-reply@clinic.example", ["pat@example.com"])]
    assert got["Message-ID"] == msg["Message-ID"]
    assert got.get_content_type() == "multipart/alternative"
    plain, html = got.get_body(("plain",)), got.get_body(("html",))
    assert plain["Content-Transfer-Encoding"] == "8bit"
    text = plain.get_content().replace("\r\n", "\n")  # as parsed off the wire
    assert text.startswith("Hello Zoë,\n")
    assert text == msg.get_body(("plain",)).get_content()
    assert "<p>Hello Zoë,</p>" in html.get_content()


def test_an_ascii_body_is_7bit(app):
    msg = _build(app, greeting="Hello Pat,")
    assert msg.get_body(("plain",))["Content-Transfer-Encoding"] == "7bit"
    assert msg.get_body(("html",))["Content-Transfer-Encoding"] == "7bit"


def test_a_line_past_the_limit_is_encoded_and_reads_back(app, inbox):
    greeting = "Hello " + "Zoë" * 400 + ","  # one line of 1,600 bytes
    msg = _build(app, greeting=greeting)
    assert msg.get_body(("plain",))["Content-Transfer-Encoding"] in ("base64", "quoted-printable")
    _send(app, msg)
    (got,) = inbox.wait_for(1)
    text = got.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith(greeting + "\n")
    assert all(len(line) <= 998 for line in got.as_bytes().split(b"\n"))


def test_a_recipient_with_a_display_name_goes_through_send_message(app, inbox):
    msg = _build(app, to="Pat Example <pat@example.com>")
    assert email._envelope(msg) is None
    _send(app, msg)
    inbox.wait_for(1)
    assert inbox.envelopes == [("no-reply@clinic.example", ["pat@example.com"])]


def test_only_one_plain_ascii_address_takes_the_quick_path(app):
    assert email._envelope(_build(app, to="zoë@example.com")) is None
    assert email._envelope(_build(app, to="a@example.com, b@example.com")) is None
    msg = _build(app)
    msg["Cc"] = "other@example.com"
    assert email._envelope(msg) is None  # send_message would mail the Cc too
    app.config["MAIL_FROM"] = "Clínica <no-reply@clinic.example>"
    assert email._envelope(_build(app)) == ("no-reply@clinic.example", "pat@example.com")


def test_the_boundary_never_occurs_in_a_body(monkeypatch):
    tokens = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(email.secrets, "token_hex", lambda _n: next(tokens))
    assert email._boundary("text with =_aaaa in it", "html") == "=_bbbb"
