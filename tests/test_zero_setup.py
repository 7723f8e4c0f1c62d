"""`make run`'s zero-setup path (SQLite, SQLite broker) and the migrations themselves."""

import subprocess
import sys

from tests.conftest import ROOT, example_values


def _flask(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "clinic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sqlite_migrate_seed_and_intake(tmp_path):
    """No server at all: SQLite under the instance folder, Celery over SQLite too."""
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY"}
    }
    env["CLINIC_INSTANCE_PATH"] = str(tmp_path)
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
