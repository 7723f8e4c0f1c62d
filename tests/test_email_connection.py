"""The SMTP connection a worker keeps: reused, and reopened once when the server dropped it."""

from __future__ import annotations

import socket

from clinic import email


def _message(to: str):
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "clinic@clinic.test", to, "Hello"
    msg.set_content("Hello")
    return msg


def test_a_dropped_connection_is_reopened_once(app, inbox):
    with app.app_context():
        email.close_connection()
        email.send(_message("one@example.com"))
        first = email._local.conn
        email.send(_message("two@example.com"))
        assert email._local.conn is first  # reused, no NOOP round trip needed
        first.sock.shutdown(socket.SHUT_RDWR)  # as a server closing an idle connection
        email.send(_message("three@example.com"))
        assert email._local.conn is not first
        email.close_connection()
    assert [m["To"] for m in inbox.wait_for(3)] == [
        "one@example.com",
        "two@example.com",
        "three@example.com",
    ]


def test_a_fresh_connection_that_fails_is_a_temporary_error(app, inbox):
    with app.app_context():
        email.close_connection()
        port = app.config["SMTP_PORT"]
        app.config["SMTP_PORT"] = 1  # nothing listens there
        try:
            email.send(_message("one@example.com"))
        except email.TemporarySendError as exc:
            assert "example.com" not in str(exc)
        else:
            raise AssertionError("expected a TemporarySendError")
        finally:
            app.config["SMTP_PORT"] = port
            email.close_connection()
