"""Test fixtures on the real services: PostgreSQL, Redis, an SMTP server, Celery workers.

The schema is built once per session by running the migrations on a fresh PostgreSQL
database; each test starts from empty tables. Time is injected with the CLINIC_NOW setting.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
FIXED_NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
# Every page's one script: it focuses an error summary (the CSP allows files of our own only)
OWN_SCRIPTS = ['<script src="/static/focus.js" defer>']


def scripts_in(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html, re.IGNORECASE)


# One Celery queue per test session, so parallel sessions on one Redis never share work.
TEST_QUEUE = f"clinic-test-{uuid.uuid4().hex[:8]}"


def clock_at(app, moment: datetime | str) -> None:
    """Move the app's clock (CLINIC_NOW) to ``moment`` (ISO 8601 with its offset, or a
    datetime), e.g. to an appointment's start: the desk statuses wait for the visit."""
    app.config["CLINIC_NOW"] = datetime.fromisoformat(moment) if isinstance(moment, str) else moment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- SMTP ---------------------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self):
        self.messages = []
        self.envelopes = []  # (MAIL FROM, [RCPT TO]) of each message, in order
        self.reply = None  # e.g. "451 try later" to make the server refuse

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.reply:
            return self.reply
        msg = message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(msg)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


@pytest.fixture(scope="session")
def smtp_server():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()


@pytest.fixture
def inbox(smtp_server):
    smtp_server.messages.clear()
    smtp_server.envelopes.clear()
    smtp_server.reply = None
    return smtp_server


# -- database -----------------------------------------------------------------------------------


@contextmanager
def new_database():
    """A new, empty PostgreSQL database of a random name (its URL), dropped on exit."""
    name = f"clinic_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url():
    with new_database() as url:
        yield url


def make_test_config(database_url: str, smtp_port: int, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url.replace("postgresql://", "postgresql+psycopg://"),
        "CELERY": {
            "broker_url": REDIS_TEST_URL,
            "task_ignore_result": True,
            "task_serializer": "json",
            "accept_content": ["json"],
            "broker_connection_retry_on_startup": True,
            "broker_connection_timeout": 2,
            "broker_connection_max_retries": 1,
            "task_acks_late": True,
            "task_default_queue": TEST_QUEUE,
        },
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_port,
        "SMTP_TIMEOUT": 5,
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "BASE_URL": "http://clinic.test",
        "STAFF_ALERT_EMAIL": "alerts@clinic.test",
        "CLINIC_NOW": FIXED_NOW,
        **extra,
    }


@pytest.fixture(scope="session")
def app(database_url, smtp_server):
    from clinic import create_app

    application = create_app(make_test_config(database_url, smtp_server.port))
    migrate(application)
    yield application
    dispose(application)


def migrate(application) -> None:
    """Build an app's database schema by running the migrations."""
    from flask_migrate import upgrade

    with application.app_context():
        upgrade(directory=str(ROOT / "migrations"))


def dispose(application) -> None:
    """Close an app's pooled connections (left open, they warn at exit)."""
    from clinic.extensions import db

    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Empty every table before each test that uses the database."""
    if "app" not in request.fixturenames and "database_url" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    app.config["CLINIC_NOW"] = FIXED_NOW
    from sqlalchemy.exc import OperationalError

    from clinic.extensions import db

    # DELETE, children first: on a handful of rows it is far cheaper than TRUNCATE
    deletes = [f"DELETE FROM {t.name}" for t in reversed(db.metadata.sorted_tables)]
    with app.app_context():
        db.session.remove()
        for attempt in range(5):
            try:
                with db.engine.begin() as conn:
                    # The audit log refuses DELETE by design; only the test reset lifts that.
                    conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
                    for statement in deletes:
                        conn.execute(text(statement))
                    conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
                break
            except OperationalError:  # a deadlock with the Celery worker finishing a task
                if attempt == 4:
                    raise
    yield


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield
        from clinic.extensions import db

        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


# -- factories and helpers ----------------------------------------------------------------------


def example_values(**overrides) -> dict:
    from clinic.api.openapi import EXAMPLE_REQUEST

    values = {**EXAMPLE_REQUEST, **overrides}
    return {k: v for k, v in values.items() if v is not None}


def odi_test_pack() -> dict:
    """A stand-in for a clinic's licensed ODI pack: the real text never enters the repository."""
    return {
        "instrument": "odi",
        "version": "test-pack-1",
        "language": "en",
        "sections": [
            {
                "title": f"Placeholder section {i}",
                "options": [f"Placeholder {i}.{k}" for k in range(6)],
            }
            for i in range(1, 11)
        ],
    }


@pytest.fixture
def odi_pack(app, tmp_path, monkeypatch):
    """The test pack loaded as the clinic's (ODI_PACK_FILE) for one test."""
    pack = odi_test_pack()
    path = tmp_path / "odi-pack.json"
    path.write_text(json.dumps(pack))
    monkeypatch.setitem(app.config, "ODI_PACK_FILE", str(path))
    return pack


@pytest.fixture
def make_request(app):
    """Store a consultation request through the service (no emails)."""
    from clinic.extensions import db
    from clinic.intake import schema, services
    from clinic.intake.rules import load_rules

    def factory(now: datetime = FIXED_NOW, **overrides):
        from zoneinfo import ZoneInfo

        with app.app_context():
            values, errors = schema.from_json(example_values(**overrides))
            assert errors == {}
            req = services.submit_request(
                values,
                source="patient",
                rules=load_rules(""),
                now=now,
                tz=ZoneInfo("America/New_York"),
                client={"ip": "127.0.0.1", "user_agent": "t"},
            )
            db.session.commit()
            return req.id

    return factory


STAFF_PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_staff(app):
    from clinic.extensions import db
    from clinic.staff import services

    def factory(role: str, email: str | None = None):
        with app.app_context():
            user = services.create_staff(
                email or f"{role}@clinic.test",
                role,
                STAFF_PASSWORD,
                full_name=role.title(),
                now=FIXED_NOW,
            )
            db.session.commit()
            return user.id

    return factory


@pytest.fixture
def login(client, make_staff):
    """Log the test client in as a new user of the given role."""

    def do(role: str, email: str | None = None):
        email = email or f"{role}@clinic.test"
        make_staff(role, email)
        response = client.post("/staff/login", data={"email": email, "password": STAFF_PASSWORD})
        assert response.status_code == 302, response.data[:500]
        return client

    return do


# -- processes: a Celery worker and a live server -----------------------------------------------


def child_env(database_url: str, smtp_port: int, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": REDIS_TEST_URL,
            "SECRET_KEY": "test-secret-key",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "BASE_URL": "http://clinic.test",
            "STAFF_ALERT_EMAIL": "alerts@clinic.test",
            "RATELIMIT_ENABLED": "false",
            "EMAIL_RETRY_BASE_SECONDS": "0.5",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def celery_worker(app, database_url, smtp_server, tmp_path_factory):
    """A real Celery worker process consuming from Redis (its log goes to a temp file)."""
    import redis

    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    log = log_path.open("w")  # noqa: SIM115 (closed at the end of the session)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "worker",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "-Q",
            TEST_QUEUE,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=child_env(database_url, smtp_server.port),
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = app.extensions["celery"].control.ping(timeout=0.5)
        if replies:
            break
        if proc.poll() is not None:
            raise RuntimeError("the Celery worker exited at start")
    else:
        proc.kill()
        raise RuntimeError("the Celery worker did not answer a ping")
    proc.log_path = log_path
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def live_server(app, database_url, smtp_server):
    """The app served over HTTP in a thread, CSRF on, for the browser tests."""
    from werkzeug.serving import make_server

    from clinic import create_app

    port = free_port()
    application = create_app(
        make_test_config(
            database_url,
            smtp_server.port,
            WTF_CSRF_ENABLED=True,
            BASE_URL=f"http://127.0.0.1:{port}",
        )
    )
    server = make_server("127.0.0.1", port, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    application.base_url = f"http://127.0.0.1:{port}"
    yield application
    server.shutdown()
    dispose(application)
