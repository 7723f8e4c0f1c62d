"""Issue lines 3 and 7: the send task in-process against a real SMTP server (aiosmtpd): one
recipient per message, one reused connection, retries with bounded jittered backoff on 4xx,
failure on 5xx, suppression on 5.1.x, consent and confidential-communication choices honoured,
a working unsubscribe link, and staff resend."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlalchemy import select

from clinic import email
from clinic.extensions import db
from clinic.followup.models import StaffTask, Timepoint
from clinic.models import Patient
from clinic.notifications import dispatcher, emails, sending
from clinic.notifications.models import Notification, Status, Suppression
from tests.conftest import FIXED_NOW, STAFF_PASSWORD
from tests.followup.test_checkin import SCREEN_CLEAR
from tests.notifications.conftest import book, by_kind, local, record_procedure, rows_for

START = "2026-11-30T10:00:00-05:00"


pytestmark = pytest.mark.usefixtures("fresh_connection")


def arrived(inbox, row):
    return [m for m in inbox.messages if m["Message-ID"] == row.message_id]


def booked(napp, clinic, headers, *, patient=0, start=START):
    appt = book(napp.test_client(), headers["front_desk"], clinic, start=start, patient=patient)
    return appt, by_kind(rows_for("appointment", appt["id"]))


def claim(row, now=FIXED_NOW):
    row.status, row.claimed_at = Status.SENDING, now
    db.session.commit()
    return row.id


def test_a_confirmation_goes_to_its_one_recipient_with_its_message_id(
    nctx, napp, clinic, headers, smtp_log
):
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    assert sending.deliver(row.id, now=FIXED_NOW) == "sent"
    db.session.refresh(row)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, FIXED_NOW, None)
    (msg,) = arrived(smtp_log, row)
    assert msg["To"] == "pat0@example.com"
    assert smtp_log.calls[-1][2] == ["pat0@example.com"]  # one envelope recipient
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    # A second copy of the task finds the row sent and sends nothing.
    assert sending.deliver(row.id, now=FIXED_NOW) == "not-claimed"
    assert len(arrived(smtp_log, row)) == 1


def test_one_smtp_connection_serves_many_messages(nctx, napp, clinic, headers, smtp_log):
    _, first = booked(napp, clinic, headers, patient=0)
    _, second = booked(napp, clinic, headers, patient=1, start="2026-11-30T11:00:00-05:00")
    sending.deliver(first["confirmation"][0].id, now=FIXED_NOW)
    conn = email._local.conn
    sending.deliver(second["confirmation"][0].id, now=FIXED_NOW)
    assert email._local.conn is conn
    peers = [call[0] for call in smtp_log.calls[-2:]]
    assert peers[0] == peers[1]  # the same client socket on the server's side
    assert [call[2] for call in smtp_log.calls[-2:]] == [["pat0@example.com"], ["pat1@example.com"]]


def test_4xx_retries_with_bounded_jittered_backoff_then_fails(nctx, napp, clinic, headers, inbox):
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    inbox.reply = "451 4.3.0 try again later"
    base = nctx.config["EMAIL_RETRY_BASE_SECONDS"]
    limit = nctx.config["NOTIFY_MAX_ATTEMPTS"]
    now = FIXED_NOW
    delays = []
    for attempt in range(1, limit):
        assert sending.deliver(row.id, now=now) == "retry"
        db.session.refresh(row)
        assert (row.status, row.attempts, row.claimed_at) == ("pending", attempt, None)
        assert row.last_error == "deferred (451)"
        delay = (row.due_at - now).total_seconds()
        nominal = min(3600.0, base * 2 ** (attempt - 1))
        assert nominal * 0.8 <= delay <= nominal * 1.2
        delays.append(delay)
        # Not due before its time: the dispatcher leaves it alone until then.
        assert row.id not in dispatcher.claim(now)
        db.session.commit()
        now = row.due_at
        assert dispatcher.claim(now) == [row.id]
        db.session.commit()
    assert delays == sorted(delays) and max(delays) <= 3600 * 1.2
    assert sending.deliver(row.id, now=now) == "failed"
    db.session.refresh(row)
    assert row.status == "failed" and row.attempts == limit
    assert row.last_error.startswith(f"gave up after {limit} attempts")
    assert arrived(inbox, row) == []


def test_jitter_spreads_retries(nctx, napp, clinic, headers, inbox):
    inbox.reply = "421 4.7.0 busy"
    dues = set()
    for i in range(4):
        _, rows = booked(
            napp,
            clinic,
            headers,
            patient=i,
            start=f"2026-11-30T{(9, 10, 11, 13)[i]:02d}:00:00-05:00",
        )
        row = rows["confirmation"][0]
        assert sending.deliver(row.id, now=FIXED_NOW) == "retry"
        db.session.refresh(row)
        dues.add(row.due_at)
    assert len(dues) == 4


def test_5xx_fails_with_its_reason_and_no_suppression(nctx, napp, clinic, headers, inbox):
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    inbox.reply = "554 5.7.1 message refused"
    assert sending.deliver(row.id, now=FIXED_NOW) == "failed"
    db.session.refresh(row)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "refused (554) 5.7.1"
    assert "example.com" not in row.last_error
    assert db.session.scalars(select(Suppression)).all() == []


def test_5_1_1_suppresses_the_address(nctx, napp, clinic, headers, inbox):
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    inbox.reply = "550 5.1.1 mailbox unknown"
    assert sending.deliver(row.id, now=FIXED_NOW) == "failed"
    db.session.refresh(row)
    assert row.last_error == "refused (550) 5.1.1"
    (suppression,) = db.session.scalars(select(Suppression)).all()
    assert (suppression.address, suppression.reason) == ("pat0@example.com", "bounced")
    inbox.reply = None
    # Later messages to that address, essential or not, are skipped.
    _, second = booked(napp, clinic, headers, start="2026-12-01T10:00:00-05:00")
    later = second["confirmation"][0]
    assert sending.deliver(later.id, now=FIXED_NOW) == "skipped"
    db.session.refresh(later)
    assert later.last_error == "address bounced"
    assert arrived(inbox, later) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"consent_email": False}, "no email consent"),
        ({"email": None}, "no email address"),
        ({"confidential_comms_request": "Call my work phone only"}, None),
    ],
)
def test_consent_and_confidential_communication_are_honoured(
    nctx, napp, clinic, headers, inbox, change, reason
):
    _, rows = booked(napp, clinic, headers)
    patient = db.session.get(Patient, clinic["patients"][0])
    for key, value in change.items():
        setattr(patient, key, value)
    db.session.commit()
    row = rows["confirmation"][0]
    assert sending.deliver(row.id, now=FIXED_NOW) == "skipped"
    db.session.refresh(row)
    assert arrived(inbox, row) == []
    if reason:
        assert row.last_error == reason
    else:
        assert row.last_error == "confidential-communication request"
        (task,) = db.session.scalars(select(StaffTask)).all()
        assert task.kind == "confidential_contact" and task.patient_id == patient.id
        assert task.title.endswith(": their appointment confirmation was not emailed")
        assert "work phone" not in task.title


def test_nothing_goes_out_for_a_cancelled_appointment(nctx, napp, clinic, headers, inbox):
    appt, rows = booked(napp, clinic, headers)
    reminder = rows["reminder_72h"][0]
    due = reminder.due_at
    assert dispatcher.claim(due) == [reminder.id]  # the dispatcher got there first
    db.session.commit()
    response = napp.test_client().post(
        f"/api/v1/appointments/{appt['id']}/cancel",
        json={"reason": "called"},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200
    assert sending.deliver(reminder.id, now=due) == "not-claimed"
    db.session.refresh(reminder)
    assert reminder.status == "cancelled"
    # Even a row claimed behind the service's back finds the appointment cancelled.
    claim(reminder, due)
    assert sending.deliver(reminder.id, now=due) == "cancelled"
    assert arrived(inbox, reminder) == []


def test_a_claimed_reminder_not_yet_sent_follows_a_reschedule(nctx, napp, clinic, headers, inbox):
    appt, rows = booked(napp, clinic, headers)
    reminder = rows["reminder_24h"][0]
    old_due = reminder.due_at
    assert reminder.id in dispatcher.claim(old_due)  # claimed, its task still queued
    db.session.commit()
    response = napp.test_client().post(
        f"/api/v1/appointments/{appt['id']}/reschedule",
        json={"start": "2026-12-04T10:00:00-05:00"},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200, response.get_json()
    db.session.expire_all()
    new_due = datetime.fromisoformat("2026-12-03T10:00:00-05:00")
    assert (reminder.status, reminder.due_at, reminder.claimed_at) == ("pending", new_due, None)
    # The queued task finds nothing to send; the next pass at the new time sends it once.
    assert sending.deliver(reminder.id, now=old_due) == "not-claimed"
    assert arrived(inbox, reminder) == []
    assert reminder.id not in dispatcher.claim(old_due)
    db.session.commit()
    assert reminder.id in dispatcher.claim(new_due)
    db.session.commit()
    assert sending.deliver(reminder.id, now=new_due) == "sent"
    (msg,) = arrived(inbox, reminder)
    assert "Friday, December 4, 2026 at 10:00 AM" in msg.get_body(("plain",)).get_content()


def test_a_reschedule_racing_a_reminder_being_sent_adds_one_for_the_new_time(
    napp, clinic, headers, inbox, database_url, monkeypatch
):
    """The send holds its row; the reschedule waits for it, sees it sent, and adds a reminder
    for the new time instead of leaving the patient with none."""
    appt, rows, reminder_id, due = booked_with_a_claimed(napp, clinic, headers, "reminder_24h")
    outcome = race_a_held_send(
        napp,
        monkeypatch,
        database_url,
        reminder_id,
        due,
        appointment_action(napp, headers, appt, "reschedule", start="2026-12-04T10:00:00-05:00"),
    )
    assert outcome["send"] == "sent"
    assert outcome["other"].status_code == 200
    with napp.app_context():
        reminders = by_kind(rows_for("appointment", appt["id"]))["reminder_24h"]
        assert [(r.revision, r.status) for r in reminders] == [(0, "sent"), (1, "pending")]
        assert reminders[1].due_at == datetime.fromisoformat("2026-12-03T10:00:00-05:00")
        db.session.remove()
    assert len(inbox.messages) == 1


def booked_with_a_claimed(napp, clinic, headers, kind: str):
    """A booking whose ``kind`` reminder the dispatcher has claimed, its task not yet run:
    (appointment JSON, its rows by kind, the reminder's id, its due time)."""
    napp.config["CLINIC_NOW"] = FIXED_NOW
    with napp.app_context():
        appt, rows = booked(napp, clinic, headers)
        reminder_id, due = rows[kind][0].id, rows[kind][0].due_at
        assert reminder_id in dispatcher.claim(due)
        db.session.commit()
        db.session.remove()
    return appt, rows, reminder_id, due


def appointment_action(napp, headers, appt, action: str, **body):
    """A call that POSTs ``body`` to the appointment's ``action`` as the front desk."""
    return lambda: napp.test_client().post(
        f"/api/v1/appointments/{appt['id']}/{action}", json=body, headers=headers["front_desk"]
    )


def race_a_held_send(
    napp,
    monkeypatch,
    database_url,
    notification_id,
    due,
    other,
    waits_in="%FROM notification%FOR UPDATE%",
) -> dict:
    """Send the claimed row in a thread and hold it while the message is on the wire; run
    ``other`` in a second thread and let the send finish only once ``other`` waits for the
    send's lock (on a statement like ``waits_in``). Both results: {"send": ..., "other": ...}.
    """
    sending_started, finish_send = threading.Event(), threading.Event()
    real_send = email.send

    def held_send(msg):
        sending_started.set()
        assert finish_send.wait(30)
        real_send(msg)

    monkeypatch.setattr(email, "send", held_send)
    outcome = {}

    def send_it():
        with napp.app_context():
            outcome["send"] = sending.deliver(notification_id, now=due)
            db.session.remove()
        email.close_connection()  # this thread's own SMTP connection

    def run_other():
        outcome["other"] = other()

    sender = threading.Thread(target=send_it)
    sender.start()
    assert sending_started.wait(30)
    racer = threading.Thread(target=run_other)
    racer.start()
    wait_until_a_backend_waits_for_a_lock(database_url, query=waits_in)
    assert "other" not in outcome  # still waiting for the send
    finish_send.set()
    sender.join(30)
    racer.join(30)
    monkeypatch.setattr(email, "send", real_send)
    return outcome


def wait_until_a_backend_waits_for_a_lock(
    database_url, attempts=600, query="%FROM notification%FOR UPDATE%"
):
    """Poll pg_stat_activity (no fixed sleep) until a backend of this database is blocked on
    a statement like ``query`` (by default a locking read of message rows: the reschedule's)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(attempts):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND query ILIKE %s",
                [query],
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the other transaction never waited for the send's lock")


def test_a_cancel_racing_a_reminder_being_sent_waits_then_leaves_it_sent(
    napp, clinic, headers, inbox, database_url, monkeypatch
):
    """The send holds its row while the reminder is on the wire; the cancel waits for it,
    finds it sent (so the cancellation that follows makes sense to the patient), cancels
    the rest, and no reminder goes out after the cancel."""
    appt, rows, reminder_id, due = booked_with_a_claimed(napp, clinic, headers, "reminder_72h")
    other_id = rows["reminder_24h"][0].id
    outcome = race_a_held_send(
        napp,
        monkeypatch,
        database_url,
        reminder_id,
        due,
        appointment_action(napp, headers, appt, "cancel", reason="called"),
        waits_in="UPDATE notification SET%",
    )
    assert outcome["send"] == "sent"
    assert outcome["other"].status_code == 200, outcome["other"].get_json()
    with napp.app_context():
        kinds = by_kind(rows_for("appointment", appt["id"]))
        status = {r.id: r.status for group in kinds.values() for r in group}
        assert status[reminder_id] == "sent" and status[other_id] == "cancelled"
        [cancellation] = kinds["cancellation"]
        # the 24-hour reminder, claimed behind the service's back, still finds it cancelled
        claim(db.session.get(Notification, other_id), due)
        assert sending.deliver(other_id, now=due) == "cancelled"
        db.session.remove()
    assert [m["Message-ID"] for m in inbox.messages] == [
        r.message_id for r in kinds["reminder_72h"]
    ]
    assert cancellation.status in ("pending", "sending")


def test_unsubscribe_link_get_shows_post_acts(nctx, napp, clinic, headers, inbox):
    _, rows = booked(napp, clinic, headers)
    reminder = rows["reminder_72h"][0]
    msg = emails.build(reminder, now=FIXED_NOW)
    url = msg["List-Unsubscribe"].strip("<>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire the link is one plain line a mail client can follow (not encoded words).
    assert f"\nList-Unsubscribe: <{url}>\n".encode() in msg.as_bytes()
    assert url in msg.get_body(("plain",)).get_content()
    path = url.removeprefix(nctx.config["BASE_URL"])
    client = napp.test_client()
    page = client.get(path)
    assert page.status_code == 200
    assert db.session.scalars(select(Suppression)).all() == []  # a GET changes nothing
    assert client.get(path[:-3] + "xyz").status_code == 404  # a forged token
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    db.session.expire_all()
    (suppression,) = db.session.scalars(select(Suppression)).all()
    assert suppression.reason == "unsubscribed"
    # Routine messages stop; essential ones (and their messages carry no link) still go.
    claim(reminder, reminder.due_at)
    assert sending.deliver(reminder.id, now=reminder.due_at) == "skipped"
    confirmation = rows["confirmation"][0]
    assert "List-Unsubscribe" not in emails.build(confirmation, now=FIXED_NOW)
    assert sending.deliver(confirmation.id, now=FIXED_NOW) == "sent"


def test_staff_see_failures_and_resend_with_the_same_message_id(
    nctx, napp, clinic, headers, inbox, make_staff
):
    _, rows = booked(napp, clinic, headers)
    row = rows["confirmation"][0]
    inbox.reply = "554 5.7.1 refused"
    sending.deliver(row.id, now=FIXED_NOW)
    inbox.reply = None
    make_staff("front_desk", "desk@clinic.test")
    client = napp.test_client()
    login = client.post(
        "/staff/login", data={"email": "desk@clinic.test", "password": STAFF_PASSWORD}
    )
    assert login.status_code == 302
    page = client.get("/staff/messages?status=failed")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "refused (554) 5.7.1" in html
    assert f"/staff/messages/{row.id}/resend" in html
    response = client.post(f"/staff/messages/{row.id}/resend", data={})
    assert response.status_code == 302
    db.session.expire_all()
    row = db.session.get(Notification, row.id)
    assert (row.status, row.attempts) == ("sending", 0)
    assert sending.deliver(row.id, now=FIXED_NOW) == "sent"
    (msg,) = arrived(inbox, row)
    assert msg["Message-ID"] == row.message_id


def test_a_follow_up_non_responder_becomes_a_staff_task(napp, nctx, clinic, headers, inbox):
    record_procedure(napp.test_client(), headers, clinic)
    rows = db.session.scalars(
        select(Notification)
        .where(Notification.patient_id == clinic["patients"][2])
        .order_by(Notification.due_at)
    ).all()
    task_row = next(r for r in rows if r.kind == "checkin_no_response")  # day 1's
    invite = next(r for r in rows if r.kind == "checkin" and r.cause_id == task_row.cause_id)
    timepoint = db.session.get(Timepoint, invite.cause_id)
    assert timepoint.status == "scheduled"
    claim(invite, invite.due_at)
    assert sending.deliver(invite.id, now=invite.due_at) == "sent"
    (msg,) = arrived(inbox, invite)
    assert "/checkin/" in msg.get_body(("plain",)).get_content()
    db.session.expire_all()
    assert db.session.get(Timepoint, invite.cause_id).status == "sent"  # invited, not answered
    claim(task_row, task_row.due_at)
    assert sending.deliver(task_row.id, now=task_row.due_at) == "task"
    db.session.expire_all()
    assert db.session.get(Timepoint, invite.cause_id).status == "missed"
    (task,) = db.session.scalars(
        select(StaffTask).where(StaffTask.kind == "followup_no_response")
    ).all()
    assert task.patient_id == clinic["patients"][2]
    assert len(arrived(inbox, task_row)) == 0


def _record_procedure(napp, clinic, headers, performed_on: str = "2026-11-24"):
    """Record a procedure for patient 2 through the API; its 6-week timepoint and messages."""
    record_procedure(napp.test_client(), headers, clinic, performed_on=performed_on)
    week6 = db.session.scalar(
        select(Timepoint).where(
            Timepoint.patient_id == clinic["patients"][2], Timepoint.code == "FU-W6"
        )
    )
    return week6, by_kind(rows_for("timepoint", week6.id))


def test_no_no_response_task_for_a_check_in_stopped_by_a_red_flag(
    napp, nctx, clinic, headers, inbox
):
    """The patient answered with a red flag: staff have the red-flag task, and the paused
    timepoint is not a non-responder (no "No answer" task, not marked missed)."""
    from clinic.followup import checkin
    from clinic.followup.models import Timepoint, TimepointStatus

    week6, rows = _record_procedure(napp, clinic, headers)
    invited = rows["checkin"][0].due_at
    checkin.submit_red_flags(week6, {**SCREEN_CLEAR, "rf_bowel": "new"}, now=invited, client=None)
    db.session.commit()
    [task_row] = rows["checkin_no_response"]
    claim(task_row, task_row.due_at)  # not routine: the pause does not hold it
    assert sending.deliver(task_row.id, now=task_row.due_at) == Status.SKIPPED
    db.session.expire_all()
    assert task_row.status == Status.SKIPPED
    assert task_row.last_error == "check-in stopped by a red flag"
    assert db.session.get(Timepoint, week6.id).status != TimepointStatus.MISSED
    kinds = db.session.scalars(
        select(StaffTask.kind).where(StaffTask.patient_id == clinic["patients"][2])
    ).all()
    assert "followup_no_response" not in kinds and "red_flag_checkin" in kinds


def _deliver_due(now: datetime, order=list) -> dict[int, str]:
    """One dispatcher pass at ``now``, its sends run in-process (in ``order``): id -> outcome."""
    ids = dispatcher.claim(now)
    db.session.commit()
    return {nid: sending.deliver(nid, now=now) for nid in order(ids)}


def test_a_non_responder_gets_the_invitation_two_re_sends_then_a_staff_task(
    napp, nctx, clinic, headers, inbox
):
    """The 6-week point with no answer, one dispatcher pass at each message's due time: the
    invitation, the re-sends at +3 and +7 days (each an email of its own, linking to the
    check-in), then no further email but a staff task, and the timepoint is missed."""
    from clinic.followup.models import TimepointStatus

    week6, rows = _record_procedure(napp, clinic, headers)
    [invite], [first], [second], [task_row] = (
        rows[k] for k in ("checkin", "checkin_resend_1", "checkin_resend_2", "checkin_no_response")
    )
    assert first.due_at - invite.due_at == timedelta(days=3)
    assert second.due_at - invite.due_at == timedelta(days=7)
    assert task_row.due_at > second.due_at
    outcomes = []
    for row in (invite, first, second, task_row):  # (earlier points' messages go in the first)
        passed = _deliver_due(row.due_at + timedelta(minutes=1))
        outcomes.append([passed.get(r.id) for r in (invite, first, second, task_row)])
    assert outcomes == [
        ["sent", None, None, None],
        [None, "sent", None, None],
        [None, None, "sent", None],
        [None, None, None, "task"],
    ]
    for row in (invite, first, second):
        [msg] = arrived(inbox, row)
        assert "/checkin/" in msg.get_body(("plain",)).get_content()
    assert arrived(inbox, task_row) == []
    db.session.expire_all()
    assert db.session.get(Timepoint, week6.id).status == TimepointStatus.MISSED
    [task] = db.session.scalars(
        select(StaffTask).where(
            StaffTask.kind == "followup_no_response", StaffTask.cause_id == task_row.id
        )
    ).all()
    assert task.patient_id == clinic["patients"][2] and "check-in" in task.title


@pytest.mark.parametrize("order", [list, lambda ids: ids[::-1]], ids=["due-order", "reversed"])
def test_only_the_latest_check_in_message_goes_when_several_are_due(
    napp, nctx, clinic, headers, inbox, order
):
    """The dispatcher stalled over the 6-week point (invited Jan 5, re-sends Jan 8 and 12):
    when it runs again on Jan 12, the patient gets one email, the latest, whichever send task
    runs first; the earlier ones are skipped."""
    week6, rows = _record_procedure(napp, clinic, headers)
    invite, first, second = (
        rows[k][0] for k in ("checkin", "checkin_resend_1", "checkin_resend_2")
    )
    assert second.due_at == local("2027-01-12T09:00:00-05:00")
    outcomes = _deliver_due(local("2027-01-12T10:00:00-05:00"), order)
    assert [outcomes[r.id] for r in (invite, first, second)] == ["skipped", "skipped", "sent"]
    db.session.expire_all()
    assert {(r.status, r.last_error) for r in (invite, first)} == {
        (Status.SKIPPED, "a later check-in message is due")
    }
    assert (
        arrived(inbox, invite) == arrived(inbox, first) == [] and len(arrived(inbox, second)) == 1
    )


def test_a_check_in_message_after_its_window_is_skipped(napp, nctx, clinic, headers, inbox):
    """Held past the 6-week window's end (Jan 12), before the staff task has run."""
    from clinic.followup.models import TimepointStatus

    week6, rows = _record_procedure(napp, clinic, headers)
    [invite] = rows["checkin"]
    now = local("2027-01-13T08:30:00-05:00")
    assert sending.deliver(claim(invite, now), now=now) == Status.SKIPPED
    db.session.expire_all()
    assert (invite.status, invite.last_error) == (Status.SKIPPED, "check-in window closed")
    assert week6.status == TimepointStatus.SCHEDULED and arrived(inbox, invite) == []


def test_held_check_in_messages_of_a_missed_timepoint_are_not_sent(
    napp, nctx, clinic, headers, inbox
):
    """A pause holds the 6-week point's emails past its window; the no-response task (not
    routine) runs meanwhile and marks it missed. When staff acknowledge weeks later, the held
    invitation and both re-sends must not all go out at once: none goes."""
    from clinic.followup.models import AutomationPause, TimepointStatus

    week6, rows = _record_procedure(napp, clinic, headers)
    pause = AutomationPause(patient_id=week6.patient_id, created_at=FIXED_NOW)
    db.session.add(pause)
    db.session.commit()
    _deliver_due(FIXED_NOW + timedelta(days=52))  # past the window (Jan 12) and the task (Jan 13)
    db.session.expire_all()
    assert week6.status == TimepointStatus.MISSED
    ack = FIXED_NOW + timedelta(days=60)
    pause.acknowledged_at = ack
    db.session.commit()
    emails_ = [rows[k][0] for k in ("checkin", "checkin_resend_1", "checkin_resend_2")]
    outcomes = _deliver_due(ack)
    assert [outcomes[r.id] for r in emails_] == ["skipped"] * 3
    db.session.expire_all()
    assert {(r.status, r.last_error) for r in emails_} == {
        (Status.SKIPPED, "check-in missed: staff follow up")
    }
    assert all(arrived(inbox, r) == [] for r in emails_)


def test_staff_resend_of_a_closed_check_in_is_refused_with_its_reason(
    napp, nctx, clinic, headers, inbox
):
    """Resending a skipped invitation after the window closed, or once the timepoint is
    missed, would only be skipped again: staff are told why at once, nothing is queued."""
    from clinic.errors import DomainError
    from clinic.followup.models import TimepointStatus
    from clinic.models import StaffUser
    from clinic.notifications import services

    week6, rows = _record_procedure(napp, clinic, headers)
    [invite] = rows["checkin"]
    closed = local("2027-01-13T08:30:00-05:00")
    assert sending.deliver(claim(invite, closed), now=closed) == Status.SKIPPED
    nurse = db.session.scalars(select(StaffUser)).first()
    with pytest.raises(DomainError, match="cannot go any more: check-in window closed"):
        services.resend(invite, actor=nurse, now=closed)
    week6.status = TimepointStatus.MISSED
    db.session.flush()
    with pytest.raises(DomainError, match="check-in missed: staff follow up"):
        services.resend(invite, actor=nurse, now=closed)
    db.session.rollback()
    db.session.expire_all()
    assert invite.status == Status.SKIPPED and arrived(inbox, invite) == []
    # inside the window, the same resend goes
    inside = local("2027-01-06T10:00:00-05:00")
    services.resend(invite, actor=nurse, now=inside)
    db.session.commit()
    assert invite.status == Status.SENDING


def test_the_no_response_task_waits_for_a_check_in_being_submitted(
    napp, nctx, clinic, headers, inbox, database_url
):
    """The patient submits the check-in (their transaction locks the timepoint and will cancel
    this task row) while the task comes due: the task must not wait for them while holding its
    own row, or the two would deadlock. It steps back five minutes and then sees the answer."""
    from sqlalchemy import create_engine, event, text

    from clinic.followup.models import TimepointStatus

    week6, rows = _record_procedure(napp, clinic, headers)
    [task] = rows["checkin_no_response"]
    due = task.due_at
    other = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    conn = other.connect()
    transaction = conn.begin()
    conn.execute(
        text("SELECT id FROM followup_timepoint WHERE id = :id FOR UPDATE"), {"id": week6.id}
    )

    @event.listens_for(db.engine, "begin")
    def short_lock_wait(connection):  # the old code waited here: fail fast instead
        connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")

    try:
        assert sending.deliver(claim(task, due), now=due) == "retry"
        db.session.expire_all()
        assert (task.status, task.due_at) == (Status.PENDING, due + timedelta(minutes=5))
        assert _no_response_tasks() == []
    finally:
        event.remove(db.engine, "begin", short_lock_wait)
        transaction.rollback()
        conn.close()
        other.dispose()
    later = due + timedelta(minutes=5)
    assert sending.deliver(claim(task, later), now=later) == "task"
    db.session.expire_all()
    assert week6.status == TimepointStatus.MISSED
    assert len(_no_response_tasks()) == 1


def _no_response_tasks() -> list:
    return db.session.scalars(
        select(StaffTask).where(StaffTask.kind == "followup_no_response")
    ).all()


class StallingServer:
    """A TCP server that answers SMTP up to a point, then says nothing more: ``at="greeting"``
    never greets; ``at="end of data"`` takes each message and never confirms it; with
    ``confirm_first`` it confirms the first message of each connection. ``messages`` counts
    the messages it took in."""

    def __init__(self, at: str, *, confirm_first: bool = False):
        import socket

        self.at, self.confirm_first = at, confirm_first
        self.messages = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        if self.at == "greeting":
            return
        reader = conn.makefile("rb")
        conn.sendall(b"220 stalling.test ESMTP\r\n")
        in_data, confirmed = False, 0
        for line in reader:
            if in_data:
                if line == b".\r\n":
                    self.messages += 1
                    in_data = False
                    if not (self.confirm_first and confirmed == 0):
                        return  # the message is in; the confirmation never comes
                    confirmed += 1
                    conn.sendall(b"250 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-stalling.test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                in_data = True
            else:
                conn.sendall(b"250 OK\r\n")

    def close(self):
        self.listener.close()
        for conn in self.connections:
            conn.close()


def _sending_row(rows, kind: str):
    """A message row of ``kind``, claimed for a send."""
    row = db.session.get(Notification, rows[kind][0].id)
    claim(row)
    return row


@pytest.mark.parametrize("at", ["greeting", "end of data", "end of data, connection reused"])
def test_a_server_that_stops_answering_times_out_and_the_message_is_retried_later(
    nctx, napp, clinic, headers, inbox, at
):
    """Issue line 3: a timeout is a temporary failure, retried with backoff. A timeout after
    the message was handed over is not resent at once on a new connection (the server may
    have taken it): only a connection found dropped before the message is reopened."""
    _, rows = booked(napp, clinic, headers)
    email.close_connection()
    first, row = _sending_row(rows, "reminder_72h"), _sending_row(rows, "reminder_24h")
    server = StallingServer(at.split(",")[0], confirm_first="reused" in at)
    saved = {k: nctx.config[k] for k in ("SMTP_PORT", "SMTP_TIMEOUT")}
    nctx.config.update(SMTP_PORT=server.port, SMTP_TIMEOUT=0.5)
    try:
        if "reused" in at:
            assert sending.deliver(first.id, now=FIXED_NOW) == "sent"  # the connection stays
        started = time.monotonic()
        assert sending.deliver(row.id, now=FIXED_NOW) == "retry"
        assert time.monotonic() - started < 5  # the timeout, not a hang
        taken = server.messages
    finally:
        nctx.config.update(saved)
        server.close()
        email.close_connection()
    assert taken == {"greeting": 0, "end of data": 1}.get(at, 2)  # never twice at once
    db.session.refresh(row)
    assert (row.status, row.attempts, row.claimed_at) == ("pending", 1, None)
    assert row.last_error == "SMTPServerDisconnected"  # a type name: no address, no server text
    base = nctx.config["EMAIL_RETRY_BASE_SECONDS"]
    assert base * 0.8 <= (row.due_at - FIXED_NOW).total_seconds() <= base * 1.2
    # at its new time it goes through the real server, once
    assert row.id in dispatcher.claim(row.due_at)
    db.session.commit()
    assert sending.deliver(row.id, now=row.due_at) == "sent"
    assert len([m for m in inbox.wait_for(1) if m["Message-ID"] == row.message_id]) == 1
