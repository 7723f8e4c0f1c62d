"""Privacy and messaging review: what leaves the send task (log lines, task failures, stored
errors) and which addresses the consent, suppression and confidential-communication rules
reach, for every kind of message, resends by staff included."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, event, select, text

from clinic.extensions import db
from clinic.followup.models import StaffTask
from clinic.models import Patient
from clinic.notifications import sending, services
from clinic.notifications.models import Notification, Status, Suppression
from tests.conftest import FIXED_NOW, example_values
from tests.notifications.conftest import book, by_kind, record_procedure, rows_for

START = "2026-11-30T10:00:00-05:00"


pytestmark = pytest.mark.usefixtures("fresh_connection")


def booked(napp, clinic, headers, *, patient=0, start=START):
    appt = book(napp.test_client(), headers["front_desk"], clinic, start=start, patient=patient)
    return appt, by_kind(rows_for("appointment", appt["id"]))


def logged(caplog) -> str:
    """Every log line of the app and of Celery, tracebacks included (not the test SMTP
    server's own protocol log, which quotes the envelope it was given)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        formatter.format(record) for record in caplog.records if record.name != "mail.log"
    )


def arrived(inbox, row):
    return [m for m in inbox.messages if m["Message-ID"] == row.message_id]


# -- suppression ----------------------------------------------------------------------------------


@pytest.fixture
def concurrent_suppression(nctx, database_url):
    """Another worker's suppression of ``address`` lands just before ours is written.

    Two messages to one address (spouses sharing a mailbox, say) bounce at the same moment in
    two workers: each looked for a suppression, found none, and inserts one. The other one's
    insert commits first, right before this session's own insert runs.
    """
    other = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    state = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        if state.get("address") and statement.lstrip().upper().startswith(
            "INSERT INTO EMAIL_SUPPRESSION"
        ):
            with other.begin() as c:
                c.execute(
                    text(
                        "INSERT INTO email_suppression (address, reason, detail, created_at)"
                        " VALUES (:a, :r, 'the other worker', :t)"
                    ),
                    {"a": state.pop("address"), "r": state["reason"], "t": FIXED_NOW},
                )

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    yield state
    event.remove(engine, "before_cursor_execute", before)
    other.dispose()


@pytest.mark.parametrize("other_reason", ["bounced", "unsubscribed"])
def test_two_bounces_to_one_address_at_once_both_record_their_failure(
    nctx, napp, clinic, headers, inbox, concurrent_suppression, other_reason
):
    """Old code: the second insert raised an IntegrityError quoting the address (into the
    worker's log) and left the message claimed, to be sent again after the claim timeout."""
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    inbox.reply = "550 5.1.1 mailbox unknown"
    concurrent_suppression.update(address="pat0@example.com", reason=other_reason)
    assert sending.deliver(row.id, now=FIXED_NOW) == "failed"
    db.session.expire_all()
    row = db.session.get(Notification, row.id)
    assert (row.status, row.last_error) == (Status.FAILED, "refused (550) 5.1.1")
    (suppression,) = db.session.scalars(select(Suppression)).all()
    # A bounce outranks an unsubscribe: the address gets nothing more, essential or not.
    assert (suppression.address, suppression.reason) == ("pat0@example.com", "bounced")


def test_an_unsubscribe_racing_a_bounce_keeps_the_bounce(nctx, concurrent_suppression):
    concurrent_suppression.update(address="pat0@example.com", reason="bounced")
    sending.suppress("pat0@example.com", "unsubscribed", "link", now=FIXED_NOW)
    db.session.commit()
    db.session.expire_all()
    (suppression,) = db.session.scalars(select(Suppression)).all()
    assert suppression.reason == "bounced"


def test_suppress_keeps_one_row_per_address_and_a_bounce_wins(nctx):
    sending.suppress(" Pat0@Example.com", "unsubscribed", "link", now=FIXED_NOW)
    sending.suppress("pat0@example.com", "unsubscribed", "again", now=FIXED_NOW)
    db.session.commit()
    assert [(s.address, s.reason) for s in db.session.scalars(select(Suppression))] == [
        ("pat0@example.com", "unsubscribed")
    ]
    row = sending.suppress("pat0@example.com", "bounced", "refused (550) 5.1.1", now=FIXED_NOW)
    assert (row.reason, row.detail) == ("bounced", "refused (550) 5.1.1")
    sending.suppress("pat0@example.com", "unsubscribed", "later", now=FIXED_NOW)
    db.session.commit()
    db.session.expire_all()
    (suppression,) = db.session.scalars(select(Suppression)).all()
    assert (suppression.reason, suppression.detail) == ("bounced", "refused (550) 5.1.1")


@pytest.fixture
def sender_refused(inbox, monkeypatch):
    """Make the SMTP server refuse the envelope sender (our MAIL FROM) with ``reply``."""
    state = {"reply": None}

    async def handle_mail(server, session, envelope, address, mail_options):
        if state["reply"]:
            return state["reply"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    monkeypatch.setattr(inbox, "handle_MAIL", handle_mail, raising=False)
    yield state
    state["reply"] = None


@pytest.mark.parametrize(
    "reply",
    [
        "553 5.1.8 <no-reply@clinic.example>: Sender address rejected: Domain not found",
        "550 5.1.7 Bad sender's mailbox address syntax",
        "550 5.1.0 <no-reply@clinic.example>: Sender address rejected",
    ],
)
def test_a_refused_sender_address_does_not_suppress_the_patient(
    nctx, napp, clinic, headers, inbox, sender_refused, reply
):
    """Our own From address refused (a relay's sender check, a misconfigured MAIL_FROM) says
    nothing about the patient's mailbox: old code suppressed every patient it tried to mail."""
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    sender_refused["reply"] = reply
    assert sending.deliver(row.id, now=FIXED_NOW) == "failed"
    db.session.refresh(row)
    assert row.status == Status.FAILED and row.last_error.startswith("sender refused (55")
    assert db.session.scalars(select(Suppression)).all() == []
    # Once the sender is fixed, the message sent again reaches the patient.
    sender_refused["reply"] = None
    row.status, row.claimed_at = Status.SENDING, FIXED_NOW
    db.session.commit()
    assert sending.deliver(row.id, now=FIXED_NOW) == "sent"
    assert len(arrived(inbox, row)) == 1


def test_a_recipient_bounce_still_suppresses(nctx, napp, clinic, headers, inbox):
    _, rows = booked(napp, clinic, headers)
    inbox.reply = "550 5.1.1 <pat0@example.com>: Recipient address rejected"
    assert sending.deliver(rows["confirmation"][0].id, now=FIXED_NOW) == "failed"
    (suppression,) = db.session.scalars(select(Suppression)).all()
    assert suppression.reason == "bounced"


# -- what the worker logs ----------------------------------------------------------------------


@pytest.fixture
def held_suppression(nctx, database_url):
    """Another transaction holds ``pat0@example.com``'s suppression row, and this app's
    statements give up waiting for a lock after half a second (a busy or stuck database)."""
    other = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    conn = other.connect()
    conn.begin()
    conn.execute(
        text(
            "INSERT INTO email_suppression (address, reason, detail, created_at)"
            " VALUES ('pat0@example.com', 'unsubscribed', 'held', :t)"
        ),
        {"t": FIXED_NOW},
    )

    def short_lock_wait(connection):
        connection.exec_driver_sql("SET LOCAL lock_timeout = '500ms'")

    event.listen(db.engine, "begin", short_lock_wait)
    yield
    event.remove(db.engine, "begin", short_lock_wait)
    conn.rollback()
    conn.close()
    other.dispose()


def test_a_send_task_failing_on_the_database_logs_no_address(
    nctx, napp, clinic, headers, inbox, held_suppression, caplog
):
    """SQLAlchemy's error text quotes the statement's parameters (here the address being
    suppressed) and PostgreSQL's detail quotes key values: Celery logs a failing task's
    exception, message and traceback, so none of that text may reach it."""
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    inbox.reply = "550 5.1.1 mailbox unknown"
    caplog.set_level(logging.INFO)
    result = napp.extensions["celery"].tasks["notifications.send"].apply(args=(row.id,))
    assert result.failed()
    assert "OperationalError" in logged(caplog)  # what failed is still said
    assert "pat0" not in logged(caplog) and "example.com" not in logged(caplog)
    assert "pat0" not in repr(result.result) and "example.com" not in str(result.traceback)
    # The message stays claimed: the dispatcher releases it after the claim timeout.
    db.session.expire_all()
    assert db.session.get(Notification, row.id).status == Status.SENDING


def intake_alert(napp, **answers) -> Notification:
    """The staff alert row of a red-flag intake sent through the API."""
    response = napp.test_client().post(
        "/api/v1/consultation-requests", json=example_values(**answers)
    )
    assert response.status_code == 201, response.get_json()
    [row] = by_kind(rows_for("consultation_request", response.get_json()["id"]))[
        "intake_alert_emergency"
    ]
    return row


def test_an_intake_alert_that_cannot_be_composed_logs_no_patient_detail(
    nctx, napp, inbox, caplog, monkeypatch
):
    """The intake's staff alert, sent by the send task: what composing it chokes on may quote
    the patient; only the exception's type reaches the log and the row."""
    from clinic.intake import emails as intake_emails

    row = intake_alert(napp, rf_bowel="new")
    address = db.session.scalars(select(Patient.email)).one()

    def broken(request_id, **kwargs):
        raise ValueError(f"cannot alert about {address}")

    monkeypatch.setattr(intake_emails, "staff_alert", broken)
    caplog.set_level(logging.INFO)
    result = napp.extensions["celery"].tasks["notifications.send"].apply(args=(row.id,))
    assert result.get() == "failed"
    db.session.refresh(row)
    assert (row.status, row.last_error) == (Status.FAILED, "could not compose: ValueError")
    assert "ValueError" in logged(caplog)
    assert "margaret" not in logged(caplog).lower() and "example.com" not in logged(caplog)
    assert inbox.messages == []


def test_a_staff_alert_that_never_gets_through_logs_codes_only(nctx, napp, inbox, caplog):
    """Server replies quote addresses; only their codes reach the log and the row. A refused
    staff address is not suppressed: the next alert tries it again."""
    from clinic.notifications import dispatcher

    row = intake_alert(napp, rf_bowel="new")
    caplog.set_level(logging.INFO)
    inbox.reply = "451 4.3.0 <alerts@clinic.test> try again later"
    assert sending.deliver(row.id, now=FIXED_NOW) == "retry"
    db.session.refresh(row)
    assert (row.status, row.attempts, row.last_error) == (Status.PENDING, 1, "deferred (451)")
    dispatcher.dispatch(row.due_at)  # claimed again once its backoff is over
    inbox.reply = "550 5.1.1 <alerts@clinic.test> no such mailbox"
    assert sending.deliver(row.id, now=row.due_at) == "failed"
    db.session.refresh(row)
    assert (row.attempts, row.last_error) == (2, "refused (550) 5.1.1")
    assert db.session.scalars(select(Suppression)).all() == []
    assert "alerts@clinic.test" not in logged(caplog) and "margaret" not in logged(caplog).lower()
    assert inbox.messages == []


def test_a_message_that_cannot_be_composed_logs_no_patient_detail(
    nctx, napp, clinic, headers, inbox, caplog, monkeypatch
):
    """What a template or the calendar part chokes on may be in the exception's text."""
    from clinic.notifications import ics

    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]

    def broken(appointment, **kwargs):
        raise ValueError(f"cannot encode {appointment.patient.email}")

    monkeypatch.setattr(ics, "invitation", broken)
    caplog.set_level(logging.INFO)
    assert sending.deliver(row.id, now=FIXED_NOW) == "failed"
    db.session.refresh(row)
    assert row.last_error == "could not compose: ValueError"
    assert "could not be composed: ValueError" in logged(caplog)
    assert "in build" in logged(caplog)  # where it broke is still logged
    assert "pat0" not in logged(caplog) and "example.com" not in logged(caplog)
    assert arrived(inbox, row) == []


# -- every kind of message honours the patient's choices ----------------------------------------


def _claim(row, now):
    row.status, row.claimed_at = Status.SENDING, now
    db.session.commit()
    return row.id


@pytest.fixture
def resend(nctx, make_staff):
    """Press "resend" as a front-desk user; the row's id."""
    from clinic.models import StaffUser

    user_id = make_staff("front_desk", "desk@clinic.test")

    def press(row):
        services.resend(row, actor=db.session.get(StaffUser, user_id), now=FIXED_NOW)
        db.session.commit()
        return row.id

    return press


def _checkin_row(napp, clinic, headers):
    record_procedure(napp.test_client(), headers, clinic, patient=0)
    return db.session.scalars(
        select(Notification)
        .where(Notification.patient_id == clinic["patients"][0], Notification.kind == "checkin")
        .order_by(Notification.due_at)
    ).first()


def test_a_confidential_request_holds_back_every_kind_and_every_resend(
    nctx, napp, clinic, headers, inbox, resend
):
    appt, rows = booked(napp, clinic, headers)
    patient = db.session.get(Patient, clinic["patients"][0])
    patient.confidential_comms_request = "Do not email me; call my sister's number"
    db.session.commit()
    confirmation = rows["confirmation"][0]
    assert sending.deliver(confirmation.id, now=FIXED_NOW) == "skipped"
    checkin = _checkin_row(napp, clinic, headers)
    response = napp.test_client().post(
        f"/api/v1/appointments/{appt['id']}/cancel",
        json={"reason": "called"},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200
    cancellation = by_kind(rows_for("appointment", appt["id"]))["cancellation"][0]
    assert sending.deliver(cancellation.id, now=FIXED_NOW) == "skipped"
    assert sending.deliver(_claim(checkin, checkin.due_at), now=checkin.due_at) == "skipped"
    # Staff pressing "resend" does not get round the patient's request either.
    db.session.refresh(cancellation)
    assert sending.deliver(resend(cancellation), now=FIXED_NOW) == "skipped"
    for row in (confirmation, cancellation, checkin):
        db.session.refresh(row)
        assert row.last_error == "confidential-communication request"
        assert arrived(inbox, row) == []
    tasks = db.session.scalars(select(StaffTask).where(StaffTask.kind == "confidential_contact"))
    tasks = list(tasks)
    assert sorted(t.cause_id for t in tasks) == sorted(
        [confirmation.id, cancellation.id, cancellation.id, checkin.id]
    )
    assert all("sister" not in t.title for t in tasks)
    titles = {t.cause_id: t.title.split(": ", 1)[1] for t in tasks}
    assert titles[confirmation.id] == "their appointment confirmation was not emailed"
    assert titles[cancellation.id] == "their cancellation notice was not emailed"
    assert titles[checkin.id] == "their follow-up check-in invitation was not emailed"


def test_a_bounced_address_gets_no_resend_and_an_unsubscribed_one_only_essentials(
    nctx, napp, clinic, headers, inbox, resend
):
    _, rows = booked(napp, clinic, headers)
    confirmation, reminder = rows["confirmation"][0], rows["reminder_72h"][0]
    assert sending.deliver(confirmation.id, now=FIXED_NOW) == "sent"
    sending.suppress("pat0@example.com", "unsubscribed", "link", now=FIXED_NOW)
    db.session.commit()
    # Unsubscribed: the routine reminder is held back, an essential resend goes.
    assert sending.deliver(_claim(reminder, reminder.due_at), now=reminder.due_at) == "skipped"
    assert sending.deliver(resend(confirmation), now=FIXED_NOW) == "sent"
    db.session.refresh(reminder)
    assert sending.deliver(resend(reminder), now=FIXED_NOW) == "skipped"
    assert len(arrived(inbox, confirmation)) == 2 and arrived(inbox, reminder) == []
    # Bounced: nothing at all, resends included.
    sending.suppress("pat0@example.com", "bounced", "refused (550) 5.1.1", now=FIXED_NOW)
    db.session.commit()
    db.session.refresh(confirmation)
    assert sending.deliver(resend(confirmation), now=FIXED_NOW) == "skipped"
    db.session.refresh(confirmation)
    assert confirmation.last_error == "address bounced"
    assert len(arrived(inbox, confirmation)) == 2


def test_the_calendar_part_says_where_and_when_only(nctx, napp, clinic, headers):
    from clinic.notifications import emails

    _, rows = booked(napp, clinic, headers, start="2026-12-02T09:00:00-05:00")
    msg = emails.build(rows["confirmation"][0], now=FIXED_NOW)
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_filename() == "appointment.ics"
    content = part.get_content()
    ical = content.decode() if isinstance(content, bytes) else content
    names = {
        line.split(":", 1)[0].split(";", 1)[0] for line in ical.splitlines() if line[:1] != " "
    }
    assert "DESCRIPTION" not in names and "ATTENDEE" not in names and "COMMENT" not in names
    assert "SUMMARY:Appointment at Riverside Clinic" in ical
    assert "pat0" not in ical and "Pat" not in ical
