"""Issue lines 2 and 7: the dispatcher claims due rows (SKIP LOCKED on PostgreSQL, UPDATE ...
RETURNING on SQLite), releases stale claims, never hands a row to two dispatchers, respects
send hours on the clinic's clock across daylight-saving changes, and runs from the CLI."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from celery.signals import before_task_publish
from sqlalchemy import func, select, text

from clinic.extensions import db
from clinic.followup.models import AutomationPause
from clinic.notifications import dispatcher, schedules, services
from clinic.notifications.models import DispatcherRun, Notification, Status
from tests.conftest import (
    FIXED_NOW,
    REDIS_TEST_URL,
    ROOT,
    child_env,
    dispose,
    make_test_config,
)
from tests.notifications.conftest import IDLE_QUEUE

NY = "America/New_York"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def patients(nctx, clinic):
    return clinic["patients"]


def make_rows(patient_id: int, count: int, *, due: datetime, routine=False, kind="confirmation"):
    """``count`` pending rows of one cause (told apart by revision); their ids."""
    rows = [
        services.create(
            patient_id=patient_id,
            kind=kind,
            cause_type="appointment",
            cause_id=10_000 + patient_id,
            revision=i,
            due_at=due,
            now=FIXED_NOW,
            routine=routine,
        )
        for i in range(count)
    ]
    db.session.commit()
    return [r.id for r in rows]


@pytest.fixture
def published():
    seen = []

    def record(sender=None, headers=None, body=None, **_):
        seen.append((sender, tuple(body[0]), headers.get("eta"), headers.get("countdown")))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


def status_of(ids):
    db.session.expire_all()
    rows = db.session.scalars(select(Notification).where(Notification.id.in_(ids))).all()
    return {r.id: r for r in rows}


# -- claim, enqueue, release ---------------------------------------------------------------------


def test_a_pass_claims_due_rows_commits_then_enqueues_ids(patients, published):
    due = make_rows(patients[0], 3, due=FIXED_NOW - timedelta(minutes=1))
    later = make_rows(patients[1], 2, due=FIXED_NOW + timedelta(minutes=1))
    result = dispatcher.dispatch(FIXED_NOW)
    assert (result.claimed, result.released, result.enqueue_failed) == (3, 0, 0)
    rows = status_of(due + later)
    assert {rows[i].status for i in due} == {Status.SENDING}
    assert {rows[i].claimed_at for i in due} == {FIXED_NOW}
    assert {rows[i].status for i in later} == {Status.PENDING}
    # One send task per id; the argument is the id alone; no ETA, no countdown.
    assert sorted(published) == sorted(("notifications.send", (i,), None, None) for i in due)
    assert db.session.get(DispatcherRun, 1).last_run_at == FIXED_NOW
    # A second pass finds nothing more to claim.
    assert dispatcher.dispatch(FIXED_NOW).claimed == 0


def test_batches_until_everything_due_is_claimed(patients):
    ids = make_rows(patients[0], 25, due=FIXED_NOW)
    assert dispatcher.dispatch(FIXED_NOW, batch=10).claimed == 25
    assert {r.status for r in status_of(ids).values()} == {Status.SENDING}


def test_stuck_claims_are_released_after_the_timeout(patients, published):
    ids = make_rows(patients[0], 2, due=FIXED_NOW)
    dispatcher.dispatch(FIXED_NOW)
    timeout = dispatcher.claim_timeout()
    assert timeout >= timedelta(seconds=300)
    # Just before the timeout: left alone.
    assert dispatcher.dispatch(FIXED_NOW + timeout - timedelta(seconds=1)).released == 0
    published.clear()
    later = FIXED_NOW + timeout + timedelta(seconds=1)
    result = dispatcher.dispatch(later)
    assert (result.released, result.claimed) == (2, 2)  # released and claimed again at once
    assert {r.claimed_at for r in status_of(ids).values()} == {later}
    assert sorted(p[1] for p in published) == sorted((i,) for i in ids)


def test_release_skips_a_stale_claim_someone_holds_instead_of_waiting(patients, database_url):
    """A send in progress (or a reschedule re-timing the row) holds it: the release leaves it
    and takes it on a later pass, so the two never wait on each other's rows."""
    held, free = make_rows(patients[0], 2, due=FIXED_NOW)
    assert sorted(dispatcher.claim(FIXED_NOW)) == [held, free]
    db.session.commit()
    later = FIXED_NOW + dispatcher.claim_timeout() + timedelta(seconds=1)
    with psycopg.connect(database_url) as other:
        other.execute("SELECT id FROM notification WHERE id = %s FOR UPDATE", (held,))
        # waiting would raise here instead of hanging the test
        db.session.execute(text("SET LOCAL lock_timeout = '5s'"))
        assert dispatcher.release_stale(later) == 1
        db.session.commit()
        assert {i: r.status for i, r in status_of([held, free]).items()} == {
            held: "sending",
            free: "pending",
        }
        other.rollback()
    assert dispatcher.release_stale(later) == 1
    db.session.commit()
    assert status_of([held])[held].status == "pending"


def test_the_claim_timeout_follows_the_settings(nctx):
    config = nctx.config
    saved = config["NOTIFY_CLAIM_TIMEOUT_SECONDS"], config["DISPATCH_INTERVAL_SECONDS"]
    try:
        config["NOTIFY_CLAIM_TIMEOUT_SECONDS"] = 42
        assert dispatcher.claim_timeout() == timedelta(seconds=42)
        config["NOTIFY_CLAIM_TIMEOUT_SECONDS"] = 0
        config["DISPATCH_INTERVAL_SECONDS"] = 120
        assert dispatcher.claim_timeout() == timedelta(seconds=600)
    finally:
        config["NOTIFY_CLAIM_TIMEOUT_SECONDS"], config["DISPATCH_INTERVAL_SECONDS"] = saved


@pytest.fixture
def pipeline_writes(monkeypatch):
    """The Redis pipelines executed (how many commands each), optionally made to fail."""
    writes: list[int] = []
    failing: list[Exception] = []
    execute = redis.client.Pipeline.execute

    def record(self, *args, **kwargs):
        writes.append(len(self.command_stack))
        if failing:
            self.reset()
            raise failing[0]
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", record)
    return writes, failing


def queued_ids(queue: redis.Redis, before: int) -> list[int]:
    """The notification ids of the send tasks pushed onto the idle queue since it held
    ``before`` messages (LPUSH puts the newest first)."""
    import base64
    import json

    fresh = queue.lrange(IDLE_QUEUE, 0, queue.llen(IDLE_QUEUE) - before - 1)
    return sorted(json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in fresh)


def test_a_pass_writes_a_batch_of_tasks_to_redis_in_one_round_trip(patients, pipeline_writes):
    writes, _ = pipeline_writes
    ids = make_rows(patients[0], 30, due=FIXED_NOW)
    queue = redis.Redis.from_url(REDIS_TEST_URL)
    before = queue.llen(IDLE_QUEUE)
    result = dispatcher.dispatch(FIXED_NOW)
    assert (result.claimed, result.enqueue_failed) == (30, 0)
    assert writes == [30]  # one pipeline of 30 LPUSHes, not 30 round trips
    assert queued_ids(queue, before) == sorted(ids)


def test_a_pass_with_nothing_due_does_not_touch_the_broker(patients, napp, monkeypatch):
    celery = napp.extensions["celery"]
    taken = []
    acquire = celery.producer_or_acquire
    monkeypatch.setattr(celery, "producer_or_acquire", lambda *a: taken.append(a) or acquire(*a))
    make_rows(patients[0], 1, due=FIXED_NOW + timedelta(hours=1))
    result = dispatcher.dispatch(FIXED_NOW)
    assert (result.claimed, result.enqueue_failed) == (0, 0)
    assert taken == []  # no producer, so no broker connection, for nothing to send


def test_a_failed_batch_write_leaves_all_its_rows_claimed_for_a_later_pass(
    patients, pipeline_writes, caplog
):
    """Whether any message of a failed write arrived is unknown: every row of it stays claimed,
    is released after the claim timeout and is sent then (a copy that did arrive finds its row
    sent)."""
    writes, failing = pipeline_writes
    failing.append(redis.ConnectionError("broker went away"))
    ids = make_rows(patients[0], 5, due=FIXED_NOW)
    result = dispatcher.dispatch(FIXED_NOW)
    assert (result.claimed, result.enqueue_failed) == (5, 5)
    assert writes == [5]
    assert {r.status for r in status_of(ids).values()} == {Status.SENDING}
    for notification_id in ids:
        assert f"could not enqueue notification {notification_id}: " in caplog.text
    failing.clear()
    assert dispatcher.dispatch(FIXED_NOW + dispatcher.claim_timeout() * 2).claimed == 5


def test_no_producer_to_be_had_counts_every_row_as_not_handed_over(
    patients, napp, monkeypatch, caplog
):
    """The producer pool refuses before any task is tried: the rows are still reported (and
    stay claimed for a later pass), not dropped in silence."""
    from kombu.exceptions import LimitExceeded

    celery = napp.extensions["celery"]

    def exhausted(*args, **kwargs):
        raise LimitExceeded("no producer left")

    monkeypatch.setattr(celery, "producer_or_acquire", exhausted)
    ids = make_rows(patients[0], 3, due=FIXED_NOW)
    result = dispatcher.dispatch(FIXED_NOW)
    assert (result.claimed, result.enqueue_failed) == (3, 3)
    for notification_id in ids:
        assert f"could not enqueue notification {notification_id}: LimitExceeded" in caplog.text
    assert {r.status for r in status_of(ids).values()} == {Status.SENDING}


def test_one_task_that_cannot_be_published_does_not_hold_back_the_others(
    patients, napp, pipeline_writes, monkeypatch
):
    ids = make_rows(patients[0], 4, due=FIXED_NOW)
    task = napp.extensions["celery"].tasks["notifications.send"]
    publish = task.apply_async

    def refuse_one(args, **kwargs):
        if args[0] == ids[1]:
            raise TypeError("cannot serialize")
        return publish(args=args, **kwargs)

    monkeypatch.setattr(task, "apply_async", refuse_one)
    queue = redis.Redis.from_url(REDIS_TEST_URL)
    before = queue.llen(IDLE_QUEUE)
    result = dispatcher.dispatch(FIXED_NOW)
    assert (result.claimed, result.enqueue_failed) == (4, 1)
    assert queued_ids(queue, before) == sorted(ids[:1] + ids[2:])
    assert status_of([ids[1]])[ids[1]].status == Status.SENDING


def test_a_broker_outage_leaves_rows_claimed_for_the_next_pass(patients, database_url, napp):
    ids = make_rows(patients[0], 2, due=FIXED_NOW)
    config = make_test_config(database_url, 1)
    config["CELERY"] = {
        **config["CELERY"],
        "broker_url": "redis://127.0.0.1:1/0",  # nothing listens there
        "task_default_queue": IDLE_QUEUE,
        "broker_transport_options": {"max_retries": 0},
    }
    from clinic import create_app

    broken = create_app(config)
    try:
        with broken.app_context():
            result = dispatcher.dispatch(FIXED_NOW)
            db.session.remove()
    finally:
        dispose(broken)
    assert (result.claimed, result.enqueue_failed) == (2, 2)
    assert {r.status for r in status_of(ids).values()} == {Status.SENDING}
    # The next pass after the timeout re-claims them: nothing is lost.
    assert dispatcher.dispatch(FIXED_NOW + dispatcher.claim_timeout() * 2).claimed == 2


def test_two_dispatchers_at_once_never_claim_a_row_twice(patients, napp):
    ids = set(make_rows(patients[0], 300, due=FIXED_NOW))
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = [[] for _ in range(4)]

    def run(i):
        with napp.app_context():
            barrier.wait()
            for _ in range(6):
                got = dispatcher.claim(FIXED_NOW, limit=25)
                db.session.commit()
                claimed[i].extend(got)
            db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [i for part in claimed for i in part]
    assert len(everything) == len(set(everything)) == 300  # disjoint, and all of them
    assert set(everything) == ids
    assert all(claimed), "every dispatcher got some work"


# -- send hours, daylight saving, pauses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-11-24T13:59:00+00:00", False),  # 08:59 EST
        ("2026-11-24T14:00:00+00:00", True),  # 09:00 EST
        ("2026-11-24T22:59:00+00:00", True),  # 17:59 EST
        ("2026-11-24T23:00:00+00:00", False),  # 18:00 EST
        ("2026-03-07T13:30:00+00:00", False),  # Saturday 08:30 EST, before the change
        ("2026-03-09T13:30:00+00:00", True),  # Monday 09:30 EDT, after it
        ("2026-03-09T22:30:00+00:00", False),  # 18:30 EDT
        ("2026-10-31T13:30:00+00:00", True),  # 09:30 EDT, before the change back
        ("2026-11-02T13:30:00+00:00", False),  # 08:30 EST, after it
        ("2026-11-02T22:30:00+00:00", True),  # 17:30 EST
    ],
)
def test_send_hours_on_the_clinic_clock_across_dst(moment, inside):
    from zoneinfo import ZoneInfo

    assert schedules.in_send_hours(utc(moment), ZoneInfo(NY), (9, 18)) is inside
    assert schedules.in_send_hours(utc(moment), ZoneInfo(NY), (0, 24)) is True


@pytest.mark.parametrize(
    ("due", "latest", "expected"),
    [
        # 01:30 EST on the night clocks spring forward: 09:00 EDT is 13:00 UTC
        ("2026-03-08T06:30:00+00:00", None, "2026-03-08T13:00:00+00:00"),
        # 02:00 EST the night they fall back: 09:00 EST is 14:00 UTC
        ("2026-11-01T07:00:00+00:00", None, "2026-11-01T14:00:00+00:00"),
        # 19:00 EDT the evening before: next morning 09:00 EST
        ("2026-10-31T23:00:00+00:00", None, "2026-11-01T14:00:00+00:00"),
        # 01:30 before an 08:30 EDT appointment on the change day: the next opening is too
        # late, so the last hour of the day before (17:00 EST, 22:00 UTC)
        ("2026-03-08T06:30:00+00:00", "2026-03-08T12:30:00+00:00", "2026-03-07T22:00:00+00:00"),
        # inside the window: unchanged
        ("2026-03-09T14:00:00+00:00", None, "2026-03-09T14:00:00+00:00"),
    ],
)
def test_reminder_times_move_into_send_hours_across_dst(due, latest, expected):
    from zoneinfo import ZoneInfo

    got = schedules.within_send_hours(
        utc(due), ZoneInfo(NY), (9, 18), latest=utc(latest) if latest else None
    )
    assert got == utc(expected)


@pytest.mark.parametrize(
    ("now", "routine_claimed"),
    [
        ("2026-03-07T13:30:00+00:00", False),  # 08:30 EST
        ("2026-03-09T13:30:00+00:00", True),  # 09:30 EDT: the same UTC hour is now inside
        ("2026-10-31T13:30:00+00:00", True),  # 09:30 EDT
        ("2026-11-02T13:30:00+00:00", False),  # 08:30 EST: the same UTC hour is now outside
    ],
)
def test_routine_rows_wait_for_send_hours_essential_ones_do_not(patients, now, routine_claimed):
    moment = utc(now)
    routine = make_rows(patients[0], 1, due=moment - timedelta(days=5), routine=True)
    essential = make_rows(patients[1], 1, due=moment - timedelta(days=5))
    claimed = dispatcher.claim(moment)
    db.session.commit()
    assert essential[0] in claimed
    assert (routine[0] in claimed) is routine_claimed


def test_a_paused_patients_routine_rows_are_not_claimed(patients):
    paused_routine = make_rows(patients[0], 1, due=FIXED_NOW, routine=True, kind="reminder_24h")
    paused_essential = make_rows(patients[0], 1, due=FIXED_NOW)
    other = make_rows(patients[1], 1, due=FIXED_NOW, routine=True, kind="reminder_24h")
    pause = AutomationPause(patient_id=patients[0], created_at=FIXED_NOW)
    db.session.add(pause)
    db.session.commit()
    claimed = dispatcher.claim(FIXED_NOW)
    db.session.commit()
    assert sorted(claimed) == sorted(paused_essential + other)
    pause.acknowledged_at = FIXED_NOW
    db.session.commit()
    assert dispatcher.claim(FIXED_NOW) == paused_routine
    db.session.commit()


def test_any_hour_when_send_hours_are_0_24(patients, nctx):
    routine = make_rows(patients[0], 1, due=FIXED_NOW, routine=True)
    saved = nctx.config["NOTIFY_SEND_HOURS"]
    nctx.config["NOTIFY_SEND_HOURS"] = (0, 24)
    try:
        assert dispatcher.claim(utc("2026-11-25T03:00:00-05:00")) == routine
        db.session.commit()
    finally:
        nctx.config["NOTIFY_SEND_HOURS"] = saved


# -- the CLI -------------------------------------------------------------------------------------


def test_dispatch_notifications_command(napp, patients):
    ids = make_rows(patients[0], 2, due=datetime.now(UTC) - timedelta(minutes=1))  # real clock
    result = napp.test_cli_runner().invoke(args=["dispatch-notifications"])
    assert result.exit_code == 0, result.output
    assert "Claimed 2 due message(s); released 0 stale claim(s)." in result.output
    assert {r.status for r in status_of(ids).values()} == {Status.SENDING}


def test_dispatch_notifications_command_in_a_subprocess(database_url, smtp_server, patients):
    ids = make_rows(patients[0], 3, due=datetime.now(UTC) - timedelta(minutes=1))
    env = child_env(database_url, smtp_server.port)
    env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/15"
    # The command publishes to the default queue of the environment's app; nothing consumes
    # "celery" on db 15 in the test session, and the rows are what we check.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "clinic", "dispatch-notifications"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Claimed 3 due message(s)" in done.stdout
    assert {r.status for r in status_of(ids).values()} == {Status.SENDING}
    assert db.session.scalar(select(func.count(DispatcherRun.id))) == 1


# -- SQLite --------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_app(tmp_path, database_url, smtp_server, app):
    from flask_migrate import upgrade

    from clinic import create_app
    from tests.notifications.conftest import build_schedule

    config = make_test_config(
        database_url,
        smtp_server.port,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'clinic.sqlite3'}",
    )
    config["CELERY"] = {**config["CELERY"], "task_default_queue": IDLE_QUEUE}
    application = create_app(config)
    with application.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        application.schedule = build_schedule()
        db.session.remove()
    yield application
    dispose(application)


def test_sqlite_claims_with_update_returning_and_parallel_dispatchers_split_rows(sqlite_app):
    with sqlite_app.app_context():
        patient = sqlite_app.schedule["patients"][0]
        ids = set(make_rows(patient, 120, due=FIXED_NOW))
        make_rows(patient + 1, 5, due=FIXED_NOW + timedelta(hours=1))
        db.session.remove()
    claimed: list[list[int]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)

    def run(i):
        with sqlite_app.app_context():
            barrier.wait()
            for _ in range(5):
                claimed[i].extend(dispatcher.claim(FIXED_NOW, limit=10))
                db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [i for part in claimed for i in part]
    assert len(everything) == len(set(everything)) == 120
    assert set(everything) == ids
    with sqlite_app.app_context():
        statuses = db.session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        ).all()
        assert dict(statuses) == {"sending": 120, "pending": 5}
        # Release after the timeout works there too.
        later = FIXED_NOW + dispatcher.claim_timeout() + timedelta(seconds=1)
        assert dispatcher.release_stale(later) == 120
        db.session.commit()
        db.session.remove()
