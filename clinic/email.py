"""Email: compose from a .txt/.html template pair, send over one reused SMTP connection."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import smtplib
import ssl
import threading
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app, render_template

logger = logging.getLogger(__name__)

_local = threading.local()

# RFC 5322 allows header lines up to 998 characters. The default 78 makes the email package
# fold a long List-Unsubscribe URL, which has no space to fold at, into RFC 2047 encoded words
# that mail clients cannot follow; with 998 it stays one plain line.
MAIL_POLICY = policy.default.clone(max_line_length=998)


SENDER_STATUSES = ("5.1.7", "5.1.8")  # RFC 3463: bad sender's mailbox / system address


class PermanentSendError(Exception):
    """The server refused the message for good (5xx); retrying will not help.

    ``enhanced`` is the RFC 3463 status code when the server gave one ("5.1.1": a bad mailbox).
    ``sender``: the server refused our own MAIL FROM address, not the recipient.
    """

    def __init__(self, text: str, enhanced: str | None = None, *, sender: bool = False):
        super().__init__(f"{text} {enhanced}" if enhanced else text)
        self.enhanced = enhanced
        self.sender = sender

    @property
    def bad_mailbox(self) -> bool:
        """5.1.x about the recipient: mailing that address again would bounce again.

        Never for a refused sender (our MAIL_FROM; 5.1.7 and 5.1.8 are sender codes wherever
        they come): that says nothing about the patient's address.
        """
        if self.sender or self.enhanced in SENDER_STATUSES:
            return False
        return bool(self.enhanced and self.enhanced.startswith("5.1."))


class TemporarySendError(Exception):
    """Worth retrying (4xx, timeout, connection lost). Its text is a code, never an address:
    Celery logs it on every retry."""


_ENHANCED = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def _enhanced(reply: bytes | str | None) -> str | None:
    """The RFC 3463 code at the start of a server reply (never the rest: it may hold addresses)."""
    if isinstance(reply, str):
        reply = reply.encode("utf-8", "replace")
    match = _ENHANCED.match(reply or b"")
    return match.group(1).decode() if match else None


def greeting(patient) -> str:
    """The salutation of a patient's email; the clinic may leave first names out (spec 4.2)."""
    if not current_app.config.get("NOTIFY_USE_FIRST_NAME", True):
        return "Hello,"
    return f"Hello {patient.preferred_name or patient.first_name},"


def set_header(msg: EmailMessage, name: str, value: str) -> None:
    """Add a header. Plain ASCII on one line is stored as it is: parsing every header into an
    object (what ``msg[name] = value`` does) cost more CPU than the rest of the message. Anything
    else (a name with accents, a line break) goes through the policy, which encodes it or
    refuses it, so no value can add a header of its own."""
    if value.isascii() and "\r" not in value and "\n" not in value and len(value) < 900:
        msg.set_raw(name, value)
    else:
        msg[name] = value


def build_message(
    template: str, to: str, subject: str, *, message_id: str | None = None, **context
) -> EmailMessage:
    """An EmailMessage with a plain-text body and an HTML alternative, one recipient."""
    config = current_app.config
    context.setdefault("clinic_name", config["CLINIC_NAME"])
    context.setdefault("clinic_phone", config["CLINIC_PHONE"])
    context.setdefault("base_url", config["BASE_URL"])
    msg = EmailMessage(policy=MAIL_POLICY)
    set_header(msg, "Subject", subject)
    set_header(msg, "From", config["MAIL_FROM"])
    set_header(msg, "To", to)
    set_header(msg, "Date", formatdate(usegmt=True))
    set_header(
        msg,
        "Message-ID",
        message_id
        or make_msgid(
            domain=config["MAIL_FROM"].rpartition("@")[2].strip("> ") or "clinic.example"
        ),
    )
    msg.set_content(render_template(f"emails/{template}.txt", **context))
    msg.add_alternative(render_template(f"emails/{template}.html", **context), subtype="html")
    return msg


def _connect() -> smtplib.SMTP:
    config = current_app.config
    conn = smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT"])
    if config["SMTP_STARTTLS"]:
        conn.starttls(context=ssl.create_default_context())
    if config["SMTP_USERNAME"]:
        conn.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
    return conn


def _connection(*, fresh: bool = False) -> smtplib.SMTP:
    """This thread's SMTP connection, opened on first use (or anew when ``fresh``)."""
    conn = getattr(_local, "conn", None)
    if conn is None or fresh:
        close_connection()
        conn = _local.conn = _connect()
    return conn


def close_connection() -> None:
    conn = getattr(_local, "conn", None)
    _local.conn = None
    if conn is not None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            conn.quit()


def send(msg: EmailMessage) -> None:
    """Send one message: PermanentSendError on 5xx, TemporarySendError on what may pass.

    smtplib's exceptions quote addresses and server text, so none of them leaves here.
    """
    try:
        reused = getattr(_local, "conn", None) is not None
        try:
            refused = _connection().send_message(msg)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            if not reused:
                raise
            # The server dropped the idle connection we kept (no NOOP round trip before every
            # message to find out): reconnect once and send on the new one.
            refused = _connection(fresh=True).send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        close_connection()
        replies = list(exc.recipients.values())
        codes = [code for code, _ in replies]
        if all(code >= 500 for code in codes):
            raise PermanentSendError(
                f"recipient refused ({codes[0]})", _enhanced(replies[0][1])
            ) from None
        raise TemporarySendError(f"recipient deferred ({codes[0]})") from None
    except smtplib.SMTPSenderRefused as exc:
        close_connection()
        if exc.smtp_code >= 500:
            raise PermanentSendError(
                f"sender refused ({exc.smtp_code})", _enhanced(exc.smtp_error), sender=True
            ) from None
        raise TemporarySendError(f"sender deferred ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        close_connection()
        if exc.smtp_code >= 500:
            raise PermanentSendError(
                f"refused ({exc.smtp_code})", _enhanced(exc.smtp_error)
            ) from None
        raise TemporarySendError(f"deferred ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        close_connection()
        raise TemporarySendError(type(exc).__name__) from None
    if refused:
        raise PermanentSendError("recipient refused")


def deliver(task, build) -> str:
    """Send the message ``build()`` makes from inside a bound Celery task.

    5xx: give up ("failed"). Anything that may pass: retry with bounded exponential backoff and
    jitter. Only codes reach the log, never addresses.
    """
    try:
        send(build())
    except PermanentSendError as exc:
        logger.warning("%s gave up: %s", task.name, exc)
        return "failed"
    except TemporarySendError as exc:
        base = current_app.config["EMAIL_RETRY_BASE_SECONDS"]
        delay = min(600, base * 2**task.request.retries) * random.uniform(0.8, 1.2)
        logger.info("%s will retry in %.0fs (%s)", task.name, delay, exc)
        raise task.retry(exc=exc, countdown=delay, max_retries=6) from None
    return "sent"
