"""clinic/database.py: pinging idle pooled connections, and the one-statement INSERT."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest
from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from clinic import database
from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent, Patient
from tests.conftest import FIXED_NOW, PG_ADMIN, dispose, make_test_config

# -- idle connections ---------------------------------------------------------------------------


@pytest.fixture
def tagged_app(database_url, smtp_server, app):
    """An app of its own whose PostgreSQL backends can be told apart (and killed)."""
    from clinic import create_app

    tag = f"ping-{uuid.uuid4().hex[:8]}"
    application = create_app(
        make_test_config(f"{database_url}?application_name={tag}", smtp_server.port)
    )
    application.tag = tag
    yield application
    dispose(application)


def kill_backends(tag: str) -> int:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (tag,),
        ).fetchone()[0]


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(database, "clock", lambda: now[0])
    return now


def test_a_connection_killed_while_idle_is_replaced_before_use(tagged_app, clock):
    with tagged_app.app_context():
        first = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool
        assert kill_backends(tagged_app.tag) == 1  # as a database restart would
        clock[0] += database.PING_AFTER_IDLE_SECONDS + 0.5
        again = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        assert again != first  # a new connection; the request did not fail
        db.session.remove()


def test_a_connection_used_a_moment_ago_is_not_pinged(tagged_app, clock):
    """The trade-off, shown: no round trip for a connection checked in within the second
    (which is why a busy server no longer pays one per request)."""
    with tagged_app.app_context():
        db.session.execute(text("SELECT 1"))
        db.session.remove()
        kill_backends(tagged_app.tag)
        clock[0] += database.PING_AFTER_IDLE_SECONDS / 2
        with pytest.raises(OperationalError):
            db.session.execute(text("SELECT 1"))
        db.session.remove()
        # the failure invalidated the pool: the next use connects afresh
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        db.session.remove()


def test_server_databases_do_not_ping_every_checkout(app):
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is False


# -- database.insert ----------------------------------------------------------------------------


def new_patient(**overrides) -> Patient:
    values = {
        "first_name": "Ada",
        "last_name": "Byron",
        "date_of_birth": date(1950, 1, 2),
        "email": "ada@example.com",
        "preferred_contact": "email",
        "created_at": FIXED_NOW,
    }
    return Patient(**{**values, **overrides})


def test_insert_leaves_the_object_persistent_with_its_id_and_defaults(app_ctx):
    patient = database.insert(new_patient())
    assert patient.id is not None and patient in db.session
    assert (patient.preferred_language, patient.voicemail_ok) == ("en", False)  # defaults
    assert patient.updated_at is not None and patient.phone_mobile is None
    patient.phone_mobile = "+15552010123"  # later changes are flushed as usual
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Patient, patient.id)
    assert (stored.first_name, stored.preferred_language) == ("Ada", "en")
    assert stored.phone_mobile == "+15552010123"


def test_insert_stores_a_many_to_one_given_as_an_object(app_ctx):
    patient = database.insert(new_patient())
    request = ConsultationRequest(
        patient=patient,
        triage="routine",
        triage_rank=2,
        source="api",
        form_version="f",
        rules_version="r",
        answers={"a": 1},
    )
    database.insert(request)
    assert request.patient_id == patient.id and request.status == "new"
    db.session.commit()
    assert (
        db.session.scalar(
            select(ConsultationRequest.patient_id).where(ConsultationRequest.id == request.id)
        )
        == patient.id
    )


def test_insert_flushes_pending_rows_first(app_ctx):
    patient = new_patient()
    db.session.add(patient)  # pending, not yet flushed
    assert patient.id is None
    database.insert(AuditEvent(ts=FIXED_NOW, action="view", resource_type="x"))
    assert patient.id is not None  # flushed before the INSERT, as the unit of work would


def test_insert_unless_inserts_nothing_when_the_condition_holds(app_ctx):
    known = (
        select(Patient.__table__.c.id)
        .where(Patient.__table__.c.email == bindparam("email"))
        .exists()
    )
    assert database.insert(new_patient(), unless=known) is not None
    second = new_patient(first_name="Other")
    assert database.insert(second, unless=known) is None
    assert second not in db.session
    assert db.session.scalar(select(func.count()).select_from(Patient)) == 1


def test_insert_without_keeping_writes_the_row_and_leaves_the_session_alone(app_ctx):
    event = database.insert(AuditEvent(ts=FIXED_NOW, action="view", resource_type="x"), keep=False)
    assert event.id is not None and event not in db.session
    db.session.commit()
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.id == event.id)) == "view"


# -- database.fetch_one -------------------------------------------------------------------------


def test_fetch_one_runs_in_the_sessions_transaction(app_ctx):
    row = database.fetch_one(
        "INSERT INTO audit_event (ts, action, resource_type, outcome)"
        " VALUES (%(ts)s, %(action)s, 'x', 'ok') RETURNING id, action",
        {"ts": FIXED_NOW, "action": "view"},
    )
    event_id, action = row
    assert action == "view"
    # the ORM's own statements see the row before the commit: the same transaction
    assert db.session.get(AuditEvent, event_id).action == "view"
    db.session.rollback()
    assert db.session.get(AuditEvent, event_id) is None  # and it goes with its rollback


def test_fetch_one_is_seen_by_statement_listeners(app_ctx):
    seen = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert database.fetch_one("SELECT %(n)s::int + 1", {"n": 41}) == (42,)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert seen == [("SELECT %(n)s::int + 1", {"n": 41})]


def test_fetch_one_raises_sqlalchemys_error_with_the_parameters_hidden(app_ctx):
    with pytest.raises(IntegrityError) as caught:
        database.fetch_one(
            "INSERT INTO patient (first_name) VALUES (%(name)s) RETURNING id", {"name": "Ada"}
        )
    assert "not-null" in str(caught.value)
    assert "[SQL parameters hidden" in str(caught.value)  # as every execute
    db.session.rollback()
    assert database.fetch_one("SELECT 1") == (1,)  # the session goes on after its rollback


def test_fetch_one_on_a_lost_connection_invalidates_it(tagged_app):
    with tagged_app.app_context():
        db.session.execute(text("SELECT 1"))
        kill_backends(tagged_app.tag)  # mid-transaction, as a database restart would
        with pytest.raises(OperationalError) as caught:
            database.fetch_one("SELECT 1")
        assert caught.value.connection_invalidated
        db.session.remove()
        # the dead connection left the pool: the next use connects afresh
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        db.session.remove()
