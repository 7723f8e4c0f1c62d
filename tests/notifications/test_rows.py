"""Issue lines 1, 4, 5, 6 at the service and API level: each message is a row created with its
cause, unique per cause, kind and revision, re-timed, cancelled and resent as the cause changes."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from celery.signals import before_task_publish
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from clinic.errors import DomainError
from clinic.extensions import db
from clinic.notifications import outbox, services
from clinic.notifications.models import Notification, Status
from clinic.scheduling.models import Appointment
from tests.conftest import FIXED_NOW, clock_at
from tests.notifications.conftest import book, by_kind, post_procedure, rows_for

MESSAGE_ID = re.compile(r"^<[0-9a-f]{32}@clinic\.example>$")
PLAN = json.loads((Path(__file__).parents[2] / "clinic/followup/plan.json").read_text())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def published():
    """Every task the test process publishes: (task name, args, eta, countdown)."""
    seen = []

    def record(sender=None, headers=None, body=None, **_):
        seen.append((sender, tuple(body[0]), headers.get("eta"), headers.get("countdown")))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


# -- line 1: rows, created with their cause ------------------------------------------------------


def test_booking_creates_its_messages_in_its_transaction(napp, clinic, headers, published):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00")
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert sorted(rows) == ["confirmation", "reminder_24h", "reminder_72h"]
        confirmation = rows["confirmation"][0]
        # Claimed at once and handed to the send task after the commit.
        assert confirmation.status == Status.SENDING
        assert confirmation.due_at == FIXED_NOW and confirmation.claimed_at == FIXED_NOW
        assert confirmation.routine is False
        r72, r24 = rows["reminder_72h"][0], rows["reminder_24h"][0]
        assert r72.due_at == utc("2026-11-27T10:00:00-05:00")
        assert r24.due_at == utc("2026-11-29T10:00:00-05:00")
        every = [r for group in rows.values() for r in group]
        for row in every:
            assert row.attempts == 0 and row.last_error is None
            assert row.patient_id == clinic["patients"][0]
            assert MESSAGE_ID.match(row.message_id), row.message_id
            assert row.created_at == FIXED_NOW
        assert r72.routine and r24.routine
        assert r72.status == r24.status == Status.PENDING
        assert len({r.message_id for r in every}) == 3
    # Exactly one task, for the confirmation, by id only, no ETA or countdown.
    assert published == [("notifications.send", (confirmation.id,), None, None)]


def test_a_clinics_own_schedule_file_decides_what_a_booking_sends(
    napp, clinic, headers, tmp_path, monkeypatch
):
    """NOTIFY_SCHEDULES_FILE pointing at the clinic's copy: consultations get a reminder two
    days and one hour before instead of the packaged 72 h and 24 h ones."""
    own = json.loads(
        (Path(__file__).parents[2] / "clinic/notifications/schedules.json").read_text()
    )
    own["version"] = "riverside-2026-12"
    own["appointment_types"]["consultation"] = [
        {"kind": "confirmation", "at_booking": True},
        {"kind": "reminder_48h", "hours_before": 48},
        {"kind": "reminder_24h", "hours_before": 1},
    ]
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps(own))
    monkeypatch.setitem(napp.config, "NOTIFY_SCHEDULES_FILE", str(path))
    appt = book(
        napp.test_client(), headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00"
    )
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert sorted(rows) == ["confirmation", "reminder_24h", "reminder_48h"]
        assert rows["reminder_48h"][0].due_at == utc("2026-11-28T10:00:00-05:00")
        assert rows["reminder_24h"][0].due_at == utc("2026-11-30T09:00:00-05:00")


def test_a_rolled_back_booking_leaves_no_row_and_sends_nothing(nctx, clinic, published):
    from clinic.models import Patient
    from clinic.scheduling import services as scheduling
    from clinic.scheduling.models import AppointmentType, Provider

    appointment = scheduling.book_appointment(
        db.session.get(Patient, clinic["patients"][1]),
        db.session.get(AppointmentType, clinic["types"]["consultation"]),
        db.session.get(Provider, clinic["providers"][0]),
        utc("2026-11-30T11:00:00-05:00"),
        now=FIXED_NOW,
        actor=None,
        source="patient",
    )
    assert len(rows_for("appointment", appointment.id)) == 3
    assert db.session.info.get(outbox._KEY)  # the id waits for the commit
    db.session.rollback()
    assert outbox._KEY not in db.session.info
    assert db.session.scalar(select(func.count(Notification.id))) == 0
    db.session.commit()
    assert published == []


def test_a_refused_booking_creates_no_message(napp, clinic, headers):
    client = napp.test_client()
    book(client, headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00", patient=0)
    response = client.post(
        "/api/v1/appointments",
        json={
            "patient_id": clinic["patients"][1],
            "appointment_type": "consultation",
            "provider_id": clinic["providers"][0],
            "start": "2026-11-30T10:00:00-05:00",
        },
        headers=headers["front_desk"],
    )
    assert response.status_code == 409
    with napp.app_context():
        patients = db.session.scalars(select(Notification.patient_id).distinct()).all()
        assert patients == [clinic["patients"][0]]


def test_one_row_per_cause_kind_and_revision(nctx, clinic, napp, headers):
    appt = book(
        napp.test_client(), headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00"
    )
    with pytest.raises(IntegrityError):  # the database holds it, not a look-up first
        services.create(
            patient_id=clinic["patients"][0],
            kind="confirmation",
            cause_type="appointment",
            cause_id=appt["id"],
            due_at=FIXED_NOW,
            now=FIXED_NOW,
        )
        db.session.flush()
    db.session.rollback()


# -- line 4: what each appointment type sends ----------------------------------------------------


def test_procedure_booking_sends_a_notice_and_48h_24h_reminders(napp, clinic, headers):
    appt = book(
        napp.test_client(),
        headers["front_desk"],
        clinic,
        start="2026-12-02T09:00:00-05:00",
        code="procedure",
    )
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert sorted(rows) == ["procedure_notice", "reminder_24h", "reminder_48h"]
        assert rows["procedure_notice"][0].status == Status.SENDING
        assert rows["reminder_48h"][0].due_at == utc("2026-11-30T09:00:00-05:00")
        assert rows["reminder_24h"][0].due_at == utc("2026-12-01T09:00:00-05:00")


def test_reminders_move_into_send_hours_and_are_skipped_when_too_late(napp, clinic, headers):
    # 08:00 start: 24 h before is 08:00, before the 9-18 window; the next opening (09:00) would
    # reach the appointment only the next day, so the reminder goes at 09:00 the day before.
    appt = book(
        napp.test_client(), headers["front_desk"], clinic, start="2026-11-26T08:00:00-05:00"
    )
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert rows["reminder_24h"][0].due_at == utc("2026-11-25T09:00:00-05:00")
        # 72 h before is already past: a row that records why it never went.
        late = rows["reminder_72h"][0]
        assert late.status == Status.SKIPPED and late.last_error


def test_a_no_show_cancels_reminders_and_queues_the_follow_up(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-24T13:00:00-05:00")
    clock_at(napp, "2026-11-24T13:30:00-05:00")  # half an hour late: the desk marks it
    response = client.post(
        f"/api/v1/appointments/{appt['id']}/status",
        json={"status": "noshow"},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200, response.get_json()
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert rows["reminder_24h"][0].status in (Status.CANCELLED, Status.SKIPPED)
        no_show = rows["no_show"][0]
        assert no_show.status == Status.PENDING and no_show.routine
        # a day later, Wed 13:30 in New York: in send hours
        assert no_show.due_at == utc("2026-11-25T13:30:00-05:00")


def _set_status(client, headers, appointment_id: int, status: str) -> None:
    response = client.post(
        f"/api/v1/appointments/{appointment_id}/status",
        json={"status": status},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200, response.get_json()


def test_a_no_show_undone_takes_back_its_message_and_task(napp, clinic, headers):
    """Old code left the "we missed you" message pending (it went out) and the call-back task
    open when staff corrected a no-show, and a second no-show later never got its message."""
    from clinic.followup.models import StaffTask

    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-25T13:00:00-05:00")
    # Marked no-show by mistake: the patient was in the waiting room.
    clock_at(napp, "2026-11-25T13:20:00-05:00")
    _set_status(client, headers, appt["id"], "noshow")
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert [r.status for r in rows["reminder_24h"]] == [Status.CANCELLED]
        assert [r.status for r in rows["no_show"]] == [Status.PENDING]
        [task] = db.session.scalars(select(StaffTask).where(StaffTask.kind == "no_show")).all()
        assert task.done_at is None

    _set_status(client, headers, appt["id"], "booked")
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert [(r.status, r.last_error) for r in rows["no_show"]] == [
            (Status.CANCELLED, "no-show undone")
        ]
        # the visit's time has come: no reminder comes back for it
        assert [(r.revision, r.status) for r in rows["reminder_24h"]] == [(0, Status.CANCELLED)]
        [task] = db.session.scalars(select(StaffTask).where(StaffTask.kind == "no_show")).all()
        assert task.done_at == utc("2026-11-25T13:20:00-05:00") and "undone" in task.note

    # A real no-show later: a new message (the next revision) and a new task.
    _set_status(client, headers, appt["id"], "noshow")
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert sorted((r.revision, r.status) for r in rows["no_show"]) == [
            (0, Status.CANCELLED),
            (1, Status.PENDING),
        ]
        assert all(r.status == Status.CANCELLED for r in rows["reminder_24h"])
        open_tasks = db.session.scalars(
            select(StaffTask).where(StaffTask.kind == "no_show", StaffTask.done_at.is_(None))
        ).all()
        assert len(open_tasks) == 1


def test_a_no_show_undone_after_its_message_went_sends_nothing_more(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-24T08:00:00-05:00")
    _set_status(client, headers, appt["id"], "noshow")
    with napp.app_context():
        [row] = by_kind(rows_for("appointment", appt["id"]))["no_show"]
        row.status = Status.SENT
        db.session.commit()
    _set_status(client, headers, appt["id"], "booked")
    _set_status(client, headers, appt["id"], "noshow")
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        assert [r.status for r in rows["no_show"]] == [Status.SENT]  # one per appointment
        # The reminders were for a time already past: none comes back.
        assert not [r for r in rows["reminder_24h"] if r.status == Status.PENDING]


# -- line 6: reschedule re-times, cancel cancels -------------------------------------------------


def test_reschedule_re_times_pending_reminders_and_sends_an_update(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00")
    with napp.app_context():
        before = {r.kind: (r.id, r.message_id) for r in rows_for("appointment", appt["id"])}
    for revision, start in ((1, "2026-12-02T14:00:00-05:00"), (2, "2026-12-03T11:00:00-05:00")):
        response = client.post(
            f"/api/v1/appointments/{appt['id']}/reschedule",
            json={"start": start},
            headers=headers["front_desk"],
        )
        assert response.status_code == 200, response.get_json()
        with napp.app_context():
            rows = by_kind(rows_for("appointment", appt["id"]))
            assert db.session.get(Appointment, appt["id"]).sequence == revision
            # The same reminder rows (same ids, same Message-IDs), re-timed.
            for kind, hours in (("reminder_72h", 72), ("reminder_24h", 24)):
                (row,) = rows[kind]
                assert (row.id, row.message_id) == before[kind]
                assert row.due_at == utc(start) - timedelta(hours=hours)
                assert row.status == Status.PENDING
            updates = rows["update"]
            assert [u.revision for u in updates] == list(range(1, revision + 1))
            assert updates[-1].status == Status.SENDING
            assert rows["confirmation"][0].revision == 0


def test_reschedule_after_a_reminder_went_adds_one_for_the_new_time(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00")
    with napp.app_context():
        sent = by_kind(rows_for("appointment", appt["id"]))["reminder_72h"][0]
        sent.status, sent.sent_at = Status.SENT, FIXED_NOW
        db.session.commit()
    response = client.post(
        f"/api/v1/appointments/{appt['id']}/reschedule",
        json={"start": "2026-12-04T10:00:00-05:00"},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))["reminder_72h"]
        assert [(r.revision, r.status) for r in rows] == [(0, "sent"), (1, "pending")]
        assert rows[1].due_at == utc("2026-12-01T10:00:00-05:00")
        assert rows[0].message_id != rows[1].message_id


def test_cancel_cancels_what_is_still_to_go_and_sends_the_cancellation(napp, clinic, headers):
    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00")
    response = client.post(
        f"/api/v1/appointments/{appt['id']}/cancel",
        json={"reason": "patient called"},
        headers=headers["front_desk"],
    )
    assert response.status_code == 200
    with napp.app_context():
        rows = by_kind(rows_for("appointment", appt["id"]))
        for kind in ("confirmation", "reminder_72h", "reminder_24h"):
            assert rows[kind][0].status == Status.CANCELLED
            assert rows[kind][0].last_error == "appointment cancelled"
        assert rows["cancellation"][0].status == Status.SENDING
        # Nothing of the appointment is left for the dispatcher.
        from clinic.notifications import dispatcher

        claimed = dispatcher.claim(utc("2026-11-30T09:59:00-05:00"))
        db.session.commit()
        assert claimed == []


# -- resend (line 1 "stable Message-ID", line 3 "staff can resend") ----------------------------


def test_resend_sends_the_same_message_again(nctx, clinic, napp, headers):
    from clinic.models import StaffUser

    appt = book(
        napp.test_client(), headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00"
    )
    row = by_kind(rows_for("appointment", appt["id"]))["confirmation"][0]
    message_id = row.message_id
    with pytest.raises(DomainError):  # still on its way
        services.resend(row, actor=db.session.scalars(select(StaffUser)).first(), now=FIXED_NOW)
    row.status, row.attempts, row.last_error = Status.FAILED, 3, "refused (550)"
    db.session.commit()
    later = FIXED_NOW + timedelta(hours=2)
    services.resend(row, actor=db.session.scalars(select(StaffUser)).first(), now=later)
    db.session.commit()
    db.session.refresh(row)
    assert row.message_id == message_id
    assert (row.status, row.attempts, row.last_error) == (Status.SENDING, 0, None)
    assert row.due_at == later and row.claimed_at == later


def test_no_resend_for_a_cancelled_appointment_but_its_cancellation(nctx, clinic, napp, headers):
    from clinic.models import StaffUser

    client = napp.test_client()
    appt = book(client, headers["front_desk"], clinic, start="2026-11-30T10:00:00-05:00")
    client.post(
        f"/api/v1/appointments/{appt['id']}/cancel",
        json={"reason": "x"},
        headers=headers["front_desk"],
    )
    rows = by_kind(rows_for("appointment", appt["id"]))
    actor = db.session.scalars(select(StaffUser)).first()
    with pytest.raises(DomainError):
        services.resend(rows["confirmation"][0], actor=actor, now=FIXED_NOW)
    db.session.rollback()
    cancellation = rows_for("appointment", appt["id"])
    (cancellation,) = [r for r in cancellation if r.kind == "cancellation"]
    cancellation.status = Status.SENT
    db.session.commit()
    services.resend(cancellation, actor=actor, now=FIXED_NOW)
    db.session.commit()
    assert cancellation.status == Status.SENDING


# -- line 5: a procedure's follow-up plan --------------------------------------------------------


def _expected_plan(performed_on: date, *, with_years: bool = False) -> list[tuple]:
    """The plan computed straight from plan.json (code, due, window start, window end)."""
    out = []
    for point in PLAN["timepoints"]:
        if not point["enabled"] and not with_years:
            continue
        due = performed_on + timedelta(days=point["offset_days"])
        while point.get("next_business_day") and due.weekday() >= 5:
            due += timedelta(days=1)
        out.append(
            (
                point["code"],
                due.isoformat(),
                (due - timedelta(days=point["window_before"])).isoformat(),
                (due + timedelta(days=point["window_after"])).isoformat(),
            )
        )
    return out


def test_recording_a_procedure_creates_its_plan(napp, clinic, headers, published):
    client = napp.test_client()
    response = post_procedure(client, headers, clinic, performed_on="2026-11-24")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    got = [(p["code"], p["due_on"], p["window_start"], p["window_end"]) for p in body["follow_up"]]
    assert got == _expected_plan(date(2026, 11, 24))
    assert [p["code"] for p in body["follow_up"]] == [
        "FU-D1",
        "FU-D10",
        "FU-W6",
        "FU-M3",
        "FU-M6",
        "FU-Y1",
        "FU-Y2",
    ]
    assert published == []  # nothing is due yet: the dispatcher will pick them up

    listing = client.get(
        f"/api/v1/patients/{clinic['patients'][2]}/notifications", headers=headers["front_desk"]
    )
    assert listing.status_code == 200
    messages = listing.get_json()
    for message in messages:
        assert {"kind", "due_at", "status", "attempts"} <= message.keys()
        assert datetime.fromisoformat(message["due_at"]).utcoffset() is not None
        assert message["status"] == "pending" and message["attempts"] == 0
    by_due = {}
    for message in messages:
        by_due.setdefault(message["kind"], []).append(datetime.fromisoformat(message["due_at"]))
    # One invitation per timepoint, at 09:00 clinic time on its due day (send hours open).
    invitations = sorted(by_due["checkin"])
    assert [d.date().isoformat() for d in invitations] == [g[1] for g in got]
    assert all((d.hour, d.minute) == (9, 0) for d in invitations)
    # Re-sends +3 and +7 days, only inside the window: none for day 1 (+2 window), one for
    # day 10 (+4), two for every later point; never more than two.
    assert len(by_due["checkin_resend_1"]) == 6
    assert len(by_due["checkin_resend_2"]) == 5
    assert "checkin_resend_3" not in by_due
    invite_by_day = {d.date(): d for d in invitations}
    for resend in by_due["checkin_resend_1"]:
        assert resend.date() - timedelta(days=3) in invite_by_day
    for resend in by_due["checkin_resend_2"]:
        assert resend.date() - timedelta(days=7) in invite_by_day
    # Then a staff task per timepoint for non-responders (a task, not an email).
    assert len(by_due["checkin_no_response"]) == 7
    tasks = [m for m in messages if m["kind"] == "checkin_no_response"]
    assert {m["channel"] for m in tasks} == {"task"}


def test_years_three_to_five_are_available(napp, clinic, headers, tmp_path):
    data = json.loads(json.dumps(PLAN))
    for point in data["timepoints"]:
        point["enabled"] = True
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    napp.config["FOLLOWUP_PLAN_FILE"] = str(path)
    try:
        response = post_procedure(napp.test_client(), headers, clinic, performed_on="2026-11-20")
    finally:
        napp.config["FOLLOWUP_PLAN_FILE"] = ""
    assert response.status_code == 201, response.get_json()
    got = [
        (p["code"], p["due_on"], p["window_start"], p["window_end"])
        for p in response.get_json()["follow_up"]
    ]
    # 2026-11-20 is a Friday: the day-1 call moves to Monday.
    assert got == _expected_plan(date(2026, 11, 20), with_years=True)
    assert got[0][1] == "2026-11-23"
    assert [g[0] for g in got][-3:] == ["FU-Y3", "FU-Y4", "FU-Y5"]


def test_procedure_rows_roll_back_with_a_refused_recording(napp, clinic, headers):
    client = napp.test_client()
    assert post_procedure(client, headers, clinic, performed_on="2026-11-24").status_code == 201
    with napp.app_context():
        count = db.session.scalar(select(func.count(Notification.id)))
    again = post_procedure(client, headers, clinic, performed_on="2026-11-24")
    assert again.status_code == 422
    future = post_procedure(client, headers, clinic, performed_on="2026-11-25", patient=3)
    assert future.status_code == 422
    with napp.app_context():
        assert db.session.scalar(select(func.count(Notification.id))) == count


def test_a_late_recording_times_re_sends_from_the_invitation(napp, clinic, headers):
    """Recorded 45 days after the date of service (Oct 10): the 6-week point (due Nov 21,
    window to Nov 28) is invited now, so its re-sends count from today, not from Nov 21; the
    +7 one would fall after the window and is dropped; the staff task stays after the window."""
    from clinic.followup.models import Timepoint

    response = post_procedure(napp.test_client(), headers, clinic, performed_on="2026-10-10")
    assert response.status_code == 201, response.get_json()
    with napp.app_context():
        week6 = db.session.scalar(select(Timepoint).where(Timepoint.code == "FU-W6"))
        assert (week6.due_on, week6.window_end) == (date(2026, 11, 21), date(2026, 11, 28))
        rows = {r.kind: r for r in rows_for("timepoint", week6.id)}
        assert rows["checkin"].due_at == FIXED_NOW
        assert rows["checkin_resend_1"].due_at == utc("2026-11-27T09:00:00-05:00")
        assert "checkin_resend_2" not in rows
        assert rows["checkin_no_response"].due_at == utc("2026-11-29T09:00:00-05:00")
        # a point not yet due keeps its plan: +3 and +7 days from its due day
        month3 = db.session.scalar(select(Timepoint).where(Timepoint.code == "FU-M3"))
        later = {r.kind: r.due_at for r in rows_for("timepoint", month3.id)}
        assert later == {
            "checkin": utc("2027-01-09T09:00:00-05:00"),
            "checkin_resend_1": utc("2027-01-12T09:00:00-05:00"),
            "checkin_resend_2": utc("2027-01-16T09:00:00-05:00"),
            "checkin_no_response": utc("2027-01-19T09:00:00-05:00"),
        }
