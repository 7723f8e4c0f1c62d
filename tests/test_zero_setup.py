"""`make run`'s zero-setup path (SQLite, SQLite broker) and the migrations themselves."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from email import message_from_bytes, policy

from tests.conftest import ROOT, example_values, free_port


def _flask(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "clinic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _zero_setup_env(instance) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY", "SMTP_HOST"}
    }
    env["CLINIC_INSTANCE_PATH"] = str(instance)
    return env


def test_sqlite_migrate_seed_and_intake(tmp_path):
    """No server at all: SQLite under the instance folder, Celery over SQLite too."""
    env = _zero_setup_env(tmp_path)
    assert _flask(env, "db", "upgrade").returncode == 0
    seeded = _flask(env, "seed-demo", "--if-empty")
    assert seeded.returncode == 0, seeded.stderr
    assert (tmp_path / "demo-credentials.txt").exists()
    assert (tmp_path / "secret_key").exists()
    assert "not seeding" in _flask(env, "seed-demo", "--if-empty").stdout
    check = _flask(env, "db", "check")
    assert check.returncode == 0 and "No new upgrade operations" in check.stdout + check.stderr

    script = f"""
import json, os
from clinic import create_app
app = create_app({{"RATELIMIT_ENABLED": False}})
assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
assert app.config["CELERY"]["broker_url"].startswith("sqla+sqlite:///")
c = app.test_client()
r = c.post("/api/v1/consultation-requests", json={example_values()!r})
assert r.status_code == 201, r.data
h = c.get("/healthz")
print(h.status_code, json.dumps(h.get_json(), sort_keys=True))
from sqlalchemy import text
from clinic.extensions import db
with app.app_context():
    try:
        db.session.execute(text("DELETE FROM audit_event"))
    except Exception as exc:
        print("append-only:", "append-only" in str(exc))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '200 {"broker": "ok", "database": "ok", "status": "ok"}' in result.stdout
    assert "append-only: True" in result.stdout


def test_make_run_starts_everything_and_mails_the_acknowledgement(tmp_path):
    """`make run`'s own script with no environment: web, worker and beat over the SQLite
    broker, and the mail sink. An intake's acknowledgement is claimed by beat's dispatcher,
    sent by the worker and filed under instance/mail/, while every process stays up.

    A broker setting only Redis knows once stopped the worker here at start."""
    env = _zero_setup_env(tmp_path)
    assert _flask(env, "db", "upgrade").returncode == 0
    port = free_port()
    env.update(
        {"PORT": str(port), "DEV_SMTP_PORT": str(free_port()), "DISPATCH_INTERVAL_SECONDS": "1"}
    )
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [sys.executable, "scripts/run_dev.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        post = urllib.request.Request(
            f"{base}/api/v1/consultation-requests",
            data=json.dumps(example_values()).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=10) as answer:
            assert answer.status == 201
        mail = tmp_path / "mail"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(mail.glob("*.eml")):
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.3)
        [filed] = list(mail.glob("*.eml"))
        message = message_from_bytes(filed.read_bytes(), policy=policy.default)
        assert message["To"] == example_values()["email"]
        assert run.poll() is None  # worker, beat, web and sink all still running
        assert "Unrecoverable error" not in (tmp_path / "run.log").read_text()
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
        log.close()


def test_postgres_schema_matches_the_models(app):
    """The migrations build exactly what the models describe (no forgotten revision)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from clinic.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata
        )
    assert diff == []
