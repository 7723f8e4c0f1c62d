"""Issue line 11: real Celery workers, Redis and an SMTP server. Booking, reschedule and cancel
with their calendar parts; a procedure's plan; a worker killed mid-batch; SMTP down then back;
Redis restarted. Delivery is polled with timeouts; time moves only through injected ``now``."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.notifications import dispatcher, services
from clinic.notifications.models import Notification, Status
from tests.conftest import FIXED_NOW, REDIS_TEST_URL, Inbox, dispose, free_port
from tests.notifications.conftest import (
    after_claim_timeout,
    app_on,
    book,
    poll,
    record_procedure,
    rows_for,
)


def calendar_of(msg) -> Calendar:
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    content = part.get_content()
    return Calendar.from_ical(content if isinstance(content, bytes) else content.encode())


def event_of(calendar: Calendar):
    (event,) = [c for c in calendar.walk() if c.name == "VEVENT"]
    return event


def test_booking_reschedule_cancel_with_calendar_parts(
    app, celery_worker, inbox, clinic, headers, booking_token
):
    client = app.test_client()
    patient = clinic["patients"][0]
    response = client.post(
        "/api/v1/appointments",
        json={
            "booking_token": booking_token(patient),
            "appointment_type": "consultation",
            "provider_id": clinic["providers"][0],
            "start": "2026-11-30T10:00:00-05:00",
        },
    )
    assert response.status_code == 201, response.get_json()
    appointment_id = response.get_json()["id"]
    (confirmation,) = inbox.wait_for(1)
    first = calendar_of(confirmation)
    assert str(first["METHOD"]) == "REQUEST"
    event = event_of(first)
    uid = str(event["UID"])
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART") == datetime(2026, 11, 30, 15, tzinfo=UTC)
    assert confirmation["To"] == "pat0@example.com"

    moved = client.post(
        f"/api/v1/appointments/{appointment_id}/reschedule",
        json={"start": "2026-12-01T14:00:00-05:00"},
        headers=headers["front_desk"],
    )
    assert moved.status_code == 200
    update = inbox.wait_for(2)[1]
    assert "moved" in update["Subject"]
    event = event_of(calendar_of(update))
    assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 1

    cancelled = client.post(
        f"/api/v1/appointments/{appointment_id}/cancel",
        json={"reason": "patient called"},
        headers=headers["front_desk"],
    )
    assert cancelled.status_code == 200
    cancellation = inbox.wait_for(3)[2]
    calendar = calendar_of(cancellation)
    assert str(calendar["METHOD"]) == "CANCEL"
    event = event_of(calendar)
    assert str(event["UID"]) == uid and int(event["SEQUENCE"]) > 1
    message_ids = [m["Message-ID"] for m in inbox.messages]
    assert len(set(message_ids)) == 3

    # A dispatcher pass long after the reminders' times sends nothing more.
    with app.app_context():
        reminders = [r for r in rows_for("appointment", appointment_id) if "reminder" in r.kind]
        assert reminders and {r.status for r in reminders} == {Status.CANCELLED}
        later = max(r.due_at for r in reminders) + timedelta(minutes=1)
        assert dispatcher.dispatch(later).claimed == 0
        rows = rows_for("appointment", appointment_id)
        assert {r.kind: r.status for r in rows if r.status == Status.SENT} == {
            "confirmation": "sent",
            "update": "sent",
            "cancellation": "sent",
        }
        db.session.remove()
    assert len(inbox.messages) == 3


def test_a_procedure_plans_its_messages(app, celery_worker, clinic, headers):
    client = app.test_client()
    recorded = record_procedure(client, headers, clinic, patient=3)
    plan = {p["code"]: p["due_on"] for p in recorded["follow_up"]}
    listing = client.get(
        f"/api/v1/patients/{clinic['patients'][3]}/notifications", headers=headers["front_desk"]
    ).get_json()
    invitations = sorted(m["due_at"][:10] for m in listing if m["kind"] == "checkin")
    assert invitations == sorted(plan.values())
    assert plan["FU-D1"] == "2026-11-25" and plan["FU-Y2"] == "2028-11-23"


# -- failure drills (their own workers, queues and, for Redis, their own server) ----------------


def due_rows(
    patient_id: int, count: int, *, cause_id: int, first_revision: int = 100
) -> list[tuple[int, str]]:
    """``count`` due confirmations of one booked appointment; (id, Message-ID) each."""
    rows = [
        services.create(
            patient_id=patient_id,
            kind="confirmation",
            cause_type="appointment",
            cause_id=cause_id,
            revision=first_revision + i,
            due_at=FIXED_NOW,
            now=FIXED_NOW,
        )
        for i in range(count)
    ]
    db.session.commit()
    return [(r.id, r.message_id) for r in rows]


def statuses(ids) -> dict:
    db.session.expire_all()
    return dict(
        db.session.execute(
            select(Notification.status, func.count())
            .where(Notification.id.in_(ids))
            .group_by(Notification.status)
        ).all()
    )


def passes_until_sent(ids: list[int], late: datetime) -> None:
    """Beat's passes after the claim timeout, a second apart, until every row is sent: a row
    released while a stale copy of its task held it (SKIP LOCKED passes it over) is claimed by
    the next pass."""
    for step in range(10):
        dispatcher.dispatch(late + timedelta(seconds=step))
        try:
            poll(lambda: statuses(ids) == {"sent": len(ids)}, 10, 0.2)
            return
        except AssertionError:
            continue
    assert statuses(ids) == {"sent": len(ids)}


@pytest.fixture
def drill(napp, clinic, headers, database_url, smtp_server):
    """A booked appointment (confirmation aside) and a fresh queue name."""
    appt = book(
        napp.test_client(), headers["front_desk"], clinic, start="2026-12-03T10:00:00-05:00"
    )
    return {
        "appointment": appt["id"],
        "patient": clinic["patients"][0],
        "queue": f"drill-{uuid.uuid4().hex[:8]}",
    }


def test_a_worker_killed_mid_batch_loses_nothing(drill, workers, inbox, database_url):
    queue = drill["queue"]
    kapp = app_on(database_url, inbox.port, queue=queue)
    try:
        with kapp.app_context():
            made = due_rows(drill["patient"], 200, cause_id=drill["appointment"])
            ids = [i for i, _ in made]
            # The production pool (docker-compose.yml): prefork, its children killed with it.
            worker = workers.start(queue, concurrency=4, pool="prefork")
            assert dispatcher.dispatch(FIXED_NOW).claimed == 200 + 0
            mine = {m for _, m in made}
            poll(lambda: sum(m["Message-ID"] in mine for m in inbox.messages) >= 15, 60)
            worker.kill()
            delivered_before = sum(m["Message-ID"] in mine for m in inbox.messages)
            assert delivered_before < 200, "the worker finished before it was killed"
            workers.start(queue, concurrency=4, pool="prefork")
            # The claims the dead worker held are released after the timeout and sent again.
            passes_until_sent(ids, after_claim_timeout(FIXED_NOW))
            received = [m["Message-ID"] for m in inbox.messages if m["Message-ID"] in mine]
            assert set(received) == mine  # every message arrived, each with its Message-ID
            assert len(received) - len(mine) <= 4  # duplicates: at most those in flight
            db.session.remove()
    finally:
        dispose(kapp)


def test_smtp_down_then_back_delivers_everything(drill, workers, database_url):
    port = free_port()
    mailbox = Inbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    queue = drill["queue"]
    kapp = app_on(database_url, port, queue=queue)
    try:
        workers.start(queue, concurrency=2, SMTP_PORT=str(port))  # the server is down
        with kapp.app_context():
            made = due_rows(drill["patient"], 10, cause_id=drill["appointment"])
            ids = [i for i, _ in made]
            dispatcher.dispatch(FIXED_NOW)
            poll(
                lambda: statuses(ids) == {"pending": 10},
                30,
                0.1,
                "every send should fail softly and wait for a retry",
            )
            attempts = db.session.scalars(
                select(Notification.attempts).where(Notification.id.in_(ids))
            ).all()
            assert set(attempts) == {1}
            controller.start()  # back
            now = datetime.now(UTC)
            for step in range(1, 6):
                dispatcher.dispatch(now + timedelta(hours=step))
                try:
                    poll(lambda: statuses(ids) == {"sent": 10}, 10, 0.1)
                    break
                except AssertionError:
                    continue
            assert statuses(ids) == {"sent": 10}
            # Only this test's rows: the passes above run on the real clock, so at some hours
            # of the day they also release and send the drill appointment's own confirmation.
            mine = {m for _, m in made}
            received = [m["Message-ID"] for m in mailbox.messages if m["Message-ID"] in mine]
            assert sorted(received) == sorted(mine)  # each exactly once
            db.session.remove()
    finally:
        dispose(kapp)
        controller.stop()


def test_redis_restarted_loses_nothing(drill, workers, inbox, database_url, tmp_path):
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"

    def start_redis():
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        poll(lambda: _pings(redis, broker), 15, 0.05, "redis did not start")
        return proc

    queue = drill["queue"]
    server = start_redis()
    kapp = app_on(database_url, inbox.port, queue=queue, broker=broker)
    try:
        with kapp.app_context():
            made = due_rows(drill["patient"], 20, cause_id=drill["appointment"])
            ids = [i for i, _ in made]
            assert dispatcher.dispatch(FIXED_NOW).claimed == 20  # queued, nobody consuming
            server.kill()  # the queued tasks die with it
            server.wait(10)
            server = start_redis()
            worker = workers.start(queue, concurrency=2, CELERY_BROKER_URL=broker)
            assert statuses(ids) == {"sending": 20}
            mine = {m for _, m in made}
            assert not any(m["Message-ID"] in mine for m in inbox.messages)
            dispatcher.dispatch(after_claim_timeout(FIXED_NOW))
            poll(lambda: statuses(ids) == {"sent": 20}, 30, 0.1, f"rows: {statuses(ids)}")
            received = [m["Message-ID"] for m in inbox.messages if m["Message-ID"] in mine]
            assert sorted(received) == sorted(mine)

            # Now under a running worker: Redis dies mid-batch and comes back; the worker
            # reconnects by itself, and what the dead server held is sent again from its rows.
            made = due_rows(drill["patient"], 60, cause_id=drill["appointment"], first_revision=200)
            ids, mine = [i for i, _ in made], {m for _, m in made}
            assert dispatcher.dispatch(FIXED_NOW).claimed == 60
            poll(lambda: sum(m["Message-ID"] in mine for m in inbox.messages) >= 3, 30, 0.02)
            server.kill()
            server.wait(10)
            delivered_before = sum(m["Message-ID"] in mine for m in inbox.messages)
            assert delivered_before < 60, "the worker finished before Redis was killed"
            server = start_redis()
            assert worker.proc.poll() is None, "the worker stopped with the broker"
            passes_until_sent(ids, after_claim_timeout(FIXED_NOW))
            received = [m["Message-ID"] for m in inbox.messages if m["Message-ID"] in mine]
            assert set(received) == mine
            assert len(received) - len(mine) <= 2  # duplicates: at most those in flight
            db.session.remove()
    finally:
        dispose(kapp)
        server.kill()
        server.wait(10)


def _pings(redis, url) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
    except Exception:
        return False


def test_the_broker_keeps_no_unacknowledged_copies(tmp_path):
    """The database is the queue of record: a task lost with a killed worker or a restarted
    Redis is sent again from its row (the two tests above), so the Redis transport's emulated
    acknowledgements, a copy of every message written on receipt and removed on ack, are off
    in the configuration the worker runs with."""
    from celery import Celery

    from clinic.config import from_environment

    env = {
        "CELERY_BROKER_URL": REDIS_TEST_URL,
        "CLINIC_INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": "test",
    }
    celery = Celery("check", config_source=from_environment(env)["CELERY"])
    with celery.connection_for_read() as connection:
        channel = connection.default_channel
        assert channel.ack_emulation is False
        assert type(channel.qos).__module__ == "kombu.transport.virtual.base"  # no unacked keys
