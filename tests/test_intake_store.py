"""A new intake's rows (patient, request, audit event, acknowledgement): one statement on
PostgreSQL, one per row on SQLite, and the same rows either way."""

from __future__ import annotations

import uuid

import pytest
from flask_migrate import upgrade
from sqlalchemy import event, func, select

from clinic import create_app
from clinic.extensions import db
from clinic.intake import schema
from clinic.intake.models import ConsultationRequest
from clinic.intake.submit import submit_values
from clinic.models import AuditEvent, Patient
from clinic.notifications.models import Notification
from tests.conftest import ROOT, dispose, example_values, make_test_config

URL = "/api/v1/consultation-requests"

NO_EMAIL = {"consent_email": False, "preferred_contact": "phone_call"}

# Each case is a list of intakes sent in turn; the same name, birth date and email is the
# same patient, whose stored record (not a later intake's answers) decides the email.
CASES = {
    "new patient who agrees to email": [{}],
    "new patient who does not": [NO_EMAIL],
    "no email address": [{**NO_EMAIL, "email": None}],
    "known patient, stored record says no email": [
        NO_EMAIL,
        {"consent_email": True, "first_name": "MARGARET"},
    ],
    "known patient, stored record says yes": [{}, NO_EMAIL],
    "two patients": [{}, {"email": "someone.else@example.com"}, {}],
    "urgent answer": [{"rf_fever": "new"}],
    "emergency answer": [{"rf_saddle_numbness": "worsening"}],
}


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory, database_url, smtp_server):
    path = tmp_path_factory.mktemp("store") / "clinic.sqlite3"
    application = create_app(
        make_test_config(
            database_url, smtp_server.port, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}"
        )
    )
    with application.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    yield application
    dispose(application)


def _empty(application) -> None:
    """Every table but the audit log, which refuses DELETE (``_rows`` reads the new events)."""
    with application.app_context():
        for table in reversed(db.metadata.sorted_tables):
            if table.name != "audit_event":
                db.session.execute(table.delete())
        db.session.commit()


def _send(application, intakes: list[dict]) -> tuple[list[int], int]:
    """The new requests' ids, and the last audit event's id before them."""
    with application.app_context():
        before = db.session.scalar(select(func.max(AuditEvent.id))) or 0
    client = application.test_client()
    ids = []
    for overrides in intakes:
        response = client.post(URL, json=example_values(**overrides))
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids, before


def _rows(application, sent: tuple[list[int], int]) -> dict:
    """What the intakes stored, with ids replaced by their order, so two databases compare."""
    request_ids, audit_before = sent
    with application.app_context():
        requests = [db.session.get(ConsultationRequest, i) for i in request_ids]
        patients = list(dict.fromkeys(r.patient_id for r in requests))
        number = {"patient": patients.index, "request": request_ids.index}

        def patient_row(patient_id):
            p = db.session.get(Patient, patient_id)
            return (p.first_name, p.email, p.consent_email, p.phone_mobile, p.created_at)

        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.id > audit_before)
            .where(AuditEvent.resource_type == "consultation_request")
            .where(AuditEvent.resource_id.in_([str(i) for i in request_ids]))
            .order_by(AuditEvent.id)
        )
        messages = db.session.scalars(
            select(Notification)
            .where(Notification.cause_type == "consultation_request")
            .where(Notification.cause_id.in_(request_ids))
            .order_by(Notification.id)
        )
        return {
            "patients": [patient_row(p) for p in patients],
            "requests": [
                (number["patient"](r.patient_id), r.triage, r.status, r.answers, r.consents)
                for r in requests
            ],
            "audit": [
                (
                    e.action,
                    e.actor_role,
                    number["request"](int(e.resource_id)),
                    None if e.patient_id is None else number["patient"](e.patient_id),
                    e.changed_fields,
                    e.reason,
                    e.ts,
                )
                for e in events
            ],
            "messages": [
                (
                    m.kind,
                    m.status,
                    number["request"](m.cause_id),
                    None if m.patient_id is None else number["patient"](m.patient_id),
                    m.due_at,
                    m.template,
                )
                for m in messages
            ],
        }


@pytest.mark.parametrize("case", CASES)
def test_postgresql_and_sqlite_store_the_same_rows(app, sqlite_app, case):
    _empty(sqlite_app)
    on_postgresql = _rows(app, _send(app, CASES[case]))
    on_sqlite = _rows(sqlite_app, _send(sqlite_app, CASES[case]))
    assert on_postgresql == on_sqlite
    assert len(on_postgresql["audit"]) >= len(CASES[case])  # each intake's create, at least


def test_a_known_patient_who_said_no_gets_no_email_whatever_the_intake_says(app):
    rows = _rows(app, _send(app, CASES["known patient, stored record says no email"]))
    assert len(rows["patients"]) == 1 and rows["patients"][0][2] is False
    assert [r[0] for r in rows["requests"]] == [0, 0]
    assert [(a[0], a[1], a[2], a[3]) for a in rows["audit"]] == [
        ("create", "patient", 0, 0),
        ("create", "patient", 1, 0),
    ]
    assert rows["messages"] == []  # the stored record says no email, whatever the intake says


def test_a_known_patient_who_agreed_gets_it_whatever_the_intake_says(app):
    rows = _rows(app, _send(app, CASES["known patient, stored record says yes"]))
    assert [(m[0], m[2], m[3]) for m in rows["messages"]] == [
        ("intake_acknowledgement", 0, 0),
        ("intake_acknowledgement", 1, 0),
    ]


@pytest.mark.parametrize("patient", ["new", "known"])
def test_a_new_intake_is_one_statement_on_postgresql(app, patient):
    client = app.test_client()
    client.post(URL, json=example_values())  # statements built, a connection in the pool
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    email = "margaret.okafor@example.com" if patient == "known" else "new@example.com"
    event.listen(engine, "before_cursor_execute", seen)
    try:
        response = client.post(URL, json=example_values(email=email))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert response.status_code == 201
    assert [s.split(None, 1)[0] for s in statements] == ["WITH"]
    rows = _rows(app, ([response.get_json()["id"]], 0))
    assert len(rows["patients"]) == 1 and len(rows["audit"]) == 1 and len(rows["messages"]) == 1


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@pytest.mark.parametrize("patient", ["new", "known"])
def test_the_new_request_comes_back_with_its_ids_outside_the_session(
    app, sqlite_app, database, patient
):
    application = app if database == "postgresql" else sqlite_app
    values = schema.from_json(example_values(rf_fever="new"))[0]  # urgent: flags, an alert
    with application.test_request_context():
        known = submit_values(values, source="api", client={}) if patient == "known" else None
        if known is None:
            values["email"] = f"{uuid.uuid4().hex}@example.com"
        request = submit_values(values, source="api", client={})
        assert request not in db.session  # nothing later changes it; not tracked
        assert request.id is not None and request.patient_id is not None
        if known is not None:
            assert request.patient_id == known.patient_id
        db.session.expire_all()
        stored = db.session.get(ConsultationRequest, request.id)
        assert (stored.patient_id, stored.triage) == (request.patient_id, "urgent")
