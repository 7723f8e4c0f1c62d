"""Email: compose from a .txt/.html template pair, send over one reused SMTP connection."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import secrets
import smtplib
import ssl
import threading
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate, make_msgid

from flask import current_app, render_template

logger = logging.getLogger(__name__)

_local = threading.local()

# RFC 5322 allows header lines up to 998 characters. The default 78 makes the email package
# fold a long List-Unsubscribe URL, which has no space to fold at, into RFC 2047 encoded words
# that mail clients cannot follow; with 998 it stays one plain line.
#
# The email package parses a header from its text each time it is read, and writing a message
# out reads each part's Content-Type several times: that parsing was most of the CPU a send
# took. Parsed headers are immutable, so one object serves every read of the same text.


class _ParsedOnce(HeaderRegistry):
    @functools.lru_cache(maxsize=512)  # noqa: B019  (one registry, made once per process)
    def __call__(self, name, value):
        return super().__call__(name, value)


MAIL_POLICY = policy.default.clone(max_line_length=998, header_factory=_ParsedOnce())


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
    text = render_template(f"emails/{template}.txt", **context)
    html = render_template(f"emails/{template}.html", **context)
    msg.set_raw("MIME-Version", "1.0")
    msg.set_raw("Content-Type", f'multipart/alternative; boundary="{_boundary(text, html)}"')
    msg.set_payload([_text_part(text, "plain"), _text_part(html, "html")])
    return msg


def _text_part(body: str, subtype: str) -> MIMEPart:
    """A UTF-8 text part, encoded as ``set_content`` encodes it, without its per-header parsing
    (which cost more CPU than rendering both templates): 7bit when ASCII, else 8bit, as long as
    no line is longer than the policy allows; past that, ``set_content`` chooses."""
    part = MIMEPart(policy=MAIL_POLICY)
    lines = body.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) > MAIL_POLICY.max_line_length:
        part.set_content(body, subtype=subtype)
        return part
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "7bit" if body.isascii() else "8bit")
    # As the email package keeps 8bit text: its bytes, surrogate-escaped in a str.
    part.set_payload((b"\n".join(lines) + b"\n").decode("ascii", "surrogateescape"))
    return part


def _boundary(*bodies: str) -> str:
    while True:
        boundary = f"=_{secrets.token_hex(16)}"
        if not any(boundary in body for body in bodies):
            return boundary


class _SMTP(smtplib.SMTP):
    """An SMTP connection that knows whether the current message's DATA has begun: a
    connection lost after that is not a dropped idle connection, and the message may have
    been accepted, so it is not sent again at once."""

    data_started = False

    def data(self, msg):
        self.data_started = True
        return super().data(msg)


def _connect() -> _SMTP:
    config = current_app.config
    conn = _SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT"])
    if config["SMTP_STARTTLS"]:
        conn.starttls(context=ssl.create_default_context())
    if config["SMTP_USERNAME"]:
        conn.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
    return conn


def _connection(*, fresh: bool = False) -> _SMTP:
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
        conn = _connection()
        conn.data_started = False
        try:
            refused = _transmit(conn, msg)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            if not reused or conn.data_started:
                raise  # a timeout or a drop mid-message: the row retries later, with backoff
            # The server dropped the idle connection we kept (no NOOP round trip before every
            # message to find out): reconnect once and send on the new one.
            refused = _transmit(_connection(fresh=True), msg)
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


def _transmit(conn: smtplib.SMTP, msg: EmailMessage) -> dict:
    """Hand one message to the server. ``send_message`` parses the From and To headers into
    objects to find the envelope, and copies the message; for a message of ours with one plain
    ASCII recipient the envelope is read off the raw headers and the message flattened once,
    about a third of a send's CPU saved. Anything else goes through ``send_message``, which
    also knows SMTPUTF8."""
    envelope = _envelope(msg)
    if envelope is None:
        return conn.send_message(msg)
    out = io.BytesIO()
    BytesGenerator(out, policy=msg.policy).flatten(msg, linesep="\r\n")
    return conn.sendmail(envelope[0], [envelope[1]], out.getvalue())


# One ASCII addr-spec and nothing else (no display name, comment, quoting or second address).
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
# Headers after which send_message would pick other envelope addresses.
_ENVELOPE_HEADERS = frozenset({"cc", "bcc", "sender", "resent-from", "resent-to", "resent-date"})


def _envelope(msg: EmailMessage) -> tuple[str, str] | None:
    """(sender, recipient) from a message's one From and one bare-address To; else None."""
    found: dict[str, str] = {}
    for name, value in msg.raw_items():
        key = name.lower()
        if key in _ENVELOPE_HEADERS or key in found:
            return None
        if key in ("from", "to"):
            found[key] = str(value)
    recipient = found.get("to", "")
    sender = _sender_address(found.get("from", ""))
    if sender is None or not _BARE_ADDRESS.fullmatch(recipient):
        return None
    return sender, recipient


@functools.lru_cache(maxsize=16)
def _sender_address(value: str) -> str | None:
    """The address of a From value (the configured MAIL_FROM: parsed once), when one, ASCII."""
    try:
        addresses = MAIL_POLICY.header_factory("From", value).addresses
    except (ValueError, IndexError):
        return None
    if len(addresses) != 1 or not addresses[0].addr_spec.isascii():
        return None
    return addresses[0].addr_spec or None
