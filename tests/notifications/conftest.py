"""Fixtures for the notification tests.

``napp`` is the session's database behind a Flask app whose Celery tasks go to an idle queue
that no worker consumes, so in-process tests (which call the dispatcher and ``sending.deliver``
themselves) never race the session's Celery worker. The end-to-end tests use the session's
``app`` and ``celery_worker``, or start their own worker processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from clinic import email
from clinic.extensions import db
from tests.conftest import (
    FIXED_NOW,
    REDIS_TEST_URL,
    ROOT,
    child_env,
    dispose,
    make_test_config,
)
from tests.scheduling.conftest import booking_token, build_schedule, staff_token  # noqa: F401

IDLE_QUEUE = f"clinic-test-notify-idle-{uuid.uuid4().hex[:8]}"


def app_on(database_url: str, smtp_port: int, *, queue: str, broker: str = REDIS_TEST_URL, **extra):
    """An app on the session's database whose tasks go to ``queue`` on ``broker``."""
    from clinic import create_app

    config = make_test_config(database_url, smtp_port, **extra)
    config["CELERY"] = {**config["CELERY"], "task_default_queue": queue, "broker_url": broker}
    return create_app(config)


@pytest.fixture(scope="session")
def napp(app, database_url, smtp_server):
    import redis

    application = app_on(database_url, smtp_server.port, queue=IDLE_QUEUE)
    yield application
    dispose(application)
    redis.Redis.from_url(REDIS_TEST_URL).delete(IDLE_QUEUE)


@pytest.fixture
def nctx(napp):
    """An app context on ``napp`` with the clock back at FIXED_NOW."""
    napp.config["CLINIC_NOW"] = FIXED_NOW
    with napp.app_context():
        yield napp
        db.session.remove()
    napp.config["CLINIC_NOW"] = FIXED_NOW


@pytest.fixture
def clinic(napp):
    """The scheduling tests' small clinic; every patient agreed to email. The clock starts at
    FIXED_NOW and goes back to it after the test (napp lives for the session)."""
    from clinic.models import Patient

    napp.config["CLINIC_NOW"] = FIXED_NOW
    with napp.app_context():
        data = build_schedule()
        for patient in db.session.scalars(select(Patient)):
            patient.consent_email = True
        db.session.commit()
        db.session.remove()
    yield data
    napp.config["CLINIC_NOW"] = FIXED_NOW


@pytest.fixture
def headers(staff_token):  # noqa: F811
    """Bearer headers of a front-desk user and of a nurse (who records procedures)."""
    return {"front_desk": staff_token("front_desk"), "nurse": staff_token("nurse")}


def local(text: str) -> datetime:
    """An ISO moment with offset, as a datetime."""
    return datetime.fromisoformat(text)


def book(client, headers, clinic, *, start: str, patient: int = 0, code: str = "consultation"):
    """Book through the staff API; the appointment's JSON."""
    response = client.post(
        "/api/v1/appointments",
        json={
            "patient_id": clinic["patients"][patient],
            "appointment_type": code,
            "provider_id": clinic["providers"][0],
            "start": start,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post_procedure(client, headers, clinic, *, patient: int = 2, performed_on: str = "2026-11-24"):
    """POST /api/v1/procedures as a nurse; the response, whatever its status."""
    return client.post(
        "/api/v1/procedures",
        json={
            "patient_id": clinic["patients"][patient],
            "performed_on": performed_on,
            "provider_id": clinic["providers"][0],
        },
        headers=headers["nurse"],
    )


def record_procedure(
    client, headers, clinic, *, patient: int = 2, performed_on: str = "2026-11-24"
) -> dict:
    """Record a procedure through the API as a nurse; its JSON (with the follow-up plan)."""
    response = post_procedure(client, headers, clinic, patient=patient, performed_on=performed_on)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def fresh_connection():
    """No SMTP connection reused from another test, before or after."""
    email.close_connection()
    yield
    email.close_connection()


def rows_for(cause_type: str, cause_id: int):
    from clinic.notifications.models import Notification

    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.cause_type == cause_type, Notification.cause_id == cause_id)
            .order_by(Notification.kind, Notification.revision)
        )
    )


def by_kind(rows) -> dict:
    out = {}
    for row in rows:
        out.setdefault(row.kind, []).append(row)
    return out


@pytest.fixture
def smtp_log(inbox, monkeypatch):
    """Every DATA the session's SMTP server receives: (client address, sender, recipients)."""
    calls = []
    original = inbox.handle_DATA

    async def handle(server, session, envelope):
        calls.append((session.peer, envelope.mail_from, list(envelope.rcpt_tos)))
        return await original(server, session, envelope)

    monkeypatch.setattr(inbox, "handle_DATA", handle)
    inbox.calls = calls
    return inbox


# -- worker processes of our own (destructive tests) ------------------------------------------


class Worker:
    """A Celery worker subprocess consuming ``queue``; its log in a temp file."""

    def __init__(
        self, queue: str, env: dict, log_path: Path, *, concurrency: int = 4, pool: str = "threads"
    ):
        self.queue = queue
        self.concurrency = concurrency
        self.log_path = log_path
        self._log = log_path.open("a")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "worker",
                "worker",
                f"--pool={pool}",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "-Q",
                queue,
                "-n",
                f"{queue}-{uuid.uuid4().hex[:6]}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # its own process group: kill() takes the pool's children too
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        start_size = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("worker exited:\n" + self.log_path.read_text()[-3000:])
            text = self.log_path.read_text()[start_size:]
            if " ready." in text:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("worker not ready:\n" + self.log_path.read_text()[-3000:])

    def kill(self) -> None:
        """SIGKILL to the worker and its pool's children at once, as when its container is
        killed: no shutdown, no acknowledgement, no restore of reserved tasks."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def workers(database_url, smtp_server, tmp_path):
    """Start workers with ``workers.start(queue, **env)``; all stopped at the end."""
    started: list[Worker] = []

    class Starter:
        def start(self, queue: str, concurrency: int = 4, pool: str = "threads", **env) -> Worker:
            environment = child_env(database_url, smtp_server.port, **env)
            environment.pop("NOTIFY_CLAIM_TIMEOUT_SECONDS", None)
            worker = Worker(
                queue,
                environment,
                tmp_path / f"worker-{len(started)}.log",
                concurrency=concurrency,
                pool=pool,
            )
            started.append(worker)
            return worker

    yield Starter()
    for worker in started:
        worker.stop()


def poll(predicate, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    """Wait for ``predicate()`` to be truthy (asynchronous delivery only); its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        time.sleep(interval)


def after_claim_timeout(moment: datetime) -> datetime:
    """A moment past the claim timeout after ``moment`` (the app's own setting)."""
    from clinic.notifications import dispatcher

    return moment + dispatcher.claim_timeout() + timedelta(seconds=1)
