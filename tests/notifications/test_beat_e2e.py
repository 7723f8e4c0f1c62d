"""Celery beat on Redis and PostgreSQL: a real ``celery beat`` process schedules the dispatcher
and a real worker sends what it claims. Beat's dispatcher sends every due row it finds, so the
test has its own database and Redis db; its own app hands nothing to Celery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from clinic.extensions import db
from clinic.models import utcnow
from clinic.notifications import dispatcher
from clinic.notifications.models import Notification, Status
from tests.conftest import ROOT, child_env, dispose, example_values, migrate, new_database
from tests.notifications.conftest import Worker, app_on, poll

# Used by no other test nor bench (15: the session's broker, 13: test_security, 11, 12, 14:
# the benchmarks).
BEAT_REDIS_URL = "redis://127.0.0.1:6379/10"
INTERVAL = 1  # DISPATCH_INTERVAL_SECONDS of the beat and worker processes
DEFAULT_QUEUE = "celery"  # where beat publishes: the processes' settings name no other queue


@pytest.fixture
def beat_broker():
    """Redis db BEAT_REDIS_URL, empty before and after the test."""
    client = redis.Redis.from_url(BEAT_REDIS_URL)
    client.flushdb()
    yield BEAT_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def beat_app(inbox):
    """An app on a database of its own, migrated. Its tasks go to an in-process broker that no
    worker reads, so a row it stores reaches the worker only through beat's dispatcher."""
    with new_database() as url:
        application = app_on(url, inbox.port, queue="beat-e2e-unread", broker="memory://")
        try:
            migrate(application)
            application.database_url = url
            yield application
        finally:
            dispose(application)


@contextmanager
def beat_process(env: dict, log_path: Path, schedule: Path):
    """``celery -A worker beat`` in its own process group, stopped on exit."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "worker",
                "beat",
                "--loglevel=INFO",
                "--schedule",
                str(schedule),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


@pytest.fixture
def beat_and_worker(beat_app, beat_broker, inbox, tmp_path):
    """A beat process and a worker on the test's database and Redis db, the dispatcher due
    every INTERVAL seconds."""
    env = child_env(
        beat_app.database_url,
        inbox.port,
        CELERY_BROKER_URL=beat_broker,
        DISPATCH_INTERVAL_SECONDS=str(INTERVAL),
    )
    with beat_process(env, tmp_path / "beat.log", tmp_path / "beat-schedule") as beat:
        worker = Worker(DEFAULT_QUEUE, env, tmp_path / "worker.log", concurrency=2)
        try:
            yield beat, worker
        finally:
            worker.stop()


def latest_pass() -> datetime | None:
    """When the dispatcher last ran (its heartbeat row), read afresh."""
    db.session.expire_all()
    return dispatcher.last_run()


def store_due_acknowledgement(application) -> Notification:
    """An intake through the API a minute ago: its acknowledgement row is stored pending, for
    the next dispatcher pass, and handed to no one."""
    application.config["CLINIC_NOW"] = utcnow() - timedelta(minutes=1)
    response = application.test_client().post(
        "/api/v1/consultation-requests", json=example_values()
    )
    assert response.status_code == 201, response.get_json()
    (row,) = db.session.scalars(select(Notification)).all()
    assert (row.kind, row.status) == ("intake_acknowledgement", Status.PENDING)
    assert row.due_at < utcnow()
    return row


def status_of(message_id: str) -> str:
    return db.session.scalar(
        select(Notification.status).where(Notification.message_id == message_id)
    )


def test_beat_dispatches_a_due_message_to_the_worker_once(beat_app, beat_and_worker, inbox):
    """Beat alone sends a due row: a real ``celery beat`` runs ``notifications.dispatch`` every
    second over Redis, a real worker claims the row on PostgreSQL and mails it with the row's
    Message-ID, and the passes after it send nothing again."""
    beat, worker = beat_and_worker
    logs = f"see {worker.log_path.parent}/beat.log and worker.log"
    with beat_app.app_context():
        poll(latest_pass, 15, 0.1, f"beat's dispatcher never ran: {logs}")
        row = store_due_acknowledgement(beat_app)
        message_id, address = row.message_id, example_values()["email"]

        poll(lambda: status_of(message_id) == Status.SENT, 15, 0.1, f"not sent: {logs}")
        (sent,) = [m for m in inbox.messages if m["Message-ID"] == message_id]
        assert sent["To"] == address
        db.session.refresh(row)
        assert row.status == Status.SENT and row.attempts == 1

        # Two more passes after the send: they find nothing due and send nothing again.
        poll(lambda: latest_pass() > row.sent_at + timedelta(seconds=2 * INTERVAL), 15, 0.1)
        assert [m["Message-ID"] for m in inbox.messages].count(message_id) == 1
        assert status_of(message_id) == Status.SENT
        assert beat.poll() is None and worker.proc.poll() is None
        db.session.remove()
