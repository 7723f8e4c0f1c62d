"""Storing an intake's rows: the patient (matched or new) and a new request with its audit event
and acknowledgement. Flush, never commit.

A new request is four rows: the patient unless already known, the request, its ``create``
audit event and, when the patient's record allows email, the acknowledgement for the next
dispatcher pass. On PostgreSQL one statement writes them all (data-modifying ``WITH``
clauses, each taking the ids made before it); elsewhere one statement each. Statements were
most of an intake's CPU, on the server and in the app, each about a tenth of it. Both ways
store the same rows, which ``tests/test_intake_store.py`` holds.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from clinic import database, jsonout
from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent, Patient
from clinic.notifications import services as notifications
from clinic.notifications.models import Notification


def new_patient(answers: Mapping[str, Any], now: datetime) -> Patient:
    """A patient record from an intake's answers, not stored yet."""
    patient = Patient(
        first_name=answers["first_name"],
        last_name=answers["last_name"],
        date_of_birth=date.fromisoformat(answers["date_of_birth"]),
        email=answers.get("email"),
        created_at=now,
    )
    patient.preferred_name = answers.get("preferred_name")
    patient.phone_mobile = answers.get("phone_mobile")
    patient.preferred_contact = answers["preferred_contact"]
    patient.preferred_language = answers.get("preferred_language", "en")
    patient.voicemail_ok = bool(answers.get("voicemail_ok"))
    patient.consent_email = bool(answers.get("consent_email"))
    patient.consent_sms = bool(answers.get("consent_sms"))
    patient.confidential_comms_request = answers.get("confidential_comms_request")
    patient.updated_at = now
    return patient


def find_or_insert_patient(patient: Patient) -> Patient:
    """The known patient with exactly this name, birth date and email, or ``patient`` (from
    ``new_patient``) inserted.

    Only a new record takes its details from the form: an unauthenticated submission must not
    rewrite a known patient's (staff see the new answers on the request). One statement
    inserts the new record unless the patient is known; without an email nobody is matched.
    """
    if database.insert(patient, unless=_patient_is_known()) is not None:
        return patient
    known = db.session.execute(_known_patient(), database.column_values(patient)).scalar_one()
    return db.session.get(Patient, known)


def insert_new_request(
    patient: Patient, request: ConsultationRequest, event: AuditEvent, now: datetime
) -> None:
    """Store a new request for ``patient`` (from ``new_patient``; the known record instead when
    there is one), with its ``create`` audit event (from ``audit.event``, patient and request
    left empty) and its acknowledgement row.

    The request comes back holding what was stored (its id and patient_id included) but
    outside the session, as the audit event and the acknowledgement do: nothing later in an
    intake changes them, and keeping them in the session cost about a tenth of its CPU. So a
    change made to it afterwards is not saved, and ``request.patient`` is not loaded.
    """
    acknowledgement = notifications.acknowledgement(now=now)
    db.session.flush()  # changes that must come first go first
    if db.session.get_bind().dialect.name == "postgresql":
        _in_one_statement(patient, request, event, acknowledgement)
        return
    stored = find_or_insert_patient(patient)
    request.patient_id = stored.id
    database.insert(request, keep=False)
    event.patient_id, event.resource_id = request.patient_id, str(request.id)
    database.insert(event, keep=False)  # append-only: never changed after
    if notifications.wants_acknowledgement(stored):
        acknowledgement.patient_id, acknowledgement.cause_id = request.patient_id, request.id
        database.insert(acknowledgement, keep=False)  # the next dispatcher pass sends it


def _in_one_statement(
    patient: Patient, request: ConsultationRequest, event: AuditEvent, acknowledgement
) -> None:
    rows = {"p": patient, "r": request, "a": event, "n": acknowledgement}
    values = {name: _as_json(database.column_values(row)) for name, row in rows.items()}
    new_patient_id, request_id, patient_id, event_id, acknowledgement_id = database.fetch_one(
        _new_request_statement(), values
    )
    if new_patient_id is not None:
        database.stored(patient, {"id": new_patient_id}, keep=False)
    database.stored(request, {"id": request_id, "patient_id": patient_id}, keep=False)
    made = {"id": event_id, "patient_id": patient_id, "resource_id": str(request_id)}
    database.stored(event, made, keep=False)
    if acknowledgement_id is not None:
        made = {"id": acknowledgement_id, "patient_id": patient_id, "cause_id": request_id}
        database.stored(acknowledgement, made, keep=False)


def _as_json(values: dict[str, Any]) -> str:
    return jsonout.dumps(values, default=_json_value)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")  # as UTCDateTime
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not stored by this statement")


# _known_patient in SQL: a patient k with the name, birth date and email of the new record v
_MATCH_SQL = (
    "k.email = v.email AND k.date_of_birth = v.date_of_birth"
    " AND lower(k.first_name) = lower(v.first_name) AND lower(k.last_name) = lower(v.last_name)"
)

# The columns the statement below fills from the rows inserted before, not from the objects.
_LINKS = {
    Patient: (),
    ConsultationRequest: ("patient_id",),
    AuditEvent: ("patient_id", "resource_id"),
    Notification: ("patient_id", "cause_id"),
}


@functools.cache
def _new_request_statement() -> str:
    """The PostgreSQL statement of ``insert_new_request``, built once from the models, with
    psycopg's placeholders (``database.fetch_one`` runs it on the driver's cursor).

    Each row comes as one JSON parameter read with ``json_populate_record`` (``p`` the
    patient, ``r`` the request, ``a`` the audit event, ``n`` the acknowledgement): four
    parameters instead of 65 columns' worth, which costs less to bind and keeps the statement
    short enough for psycopg to cache its parsing (together about a sixth of an intake's
    CPU). All its parts read the same snapshot, so exactly one of the new patient (``p``,
    inserted only when the match finds nobody) and the known one is in ``who``.
    """
    match = _MATCH_SQL
    # what notifications.wants_acknowledgement asks of the patient's record
    wants_email = "coalesce(who.email, '') <> '' AND who.consent_email"
    sql = f"""WITH p AS (
  {_insert(Patient, "p", "", "")} WHERE NOT EXISTS (SELECT FROM patient k WHERE {match})
  RETURNING id, email, consent_email
), who AS (
  SELECT id, email, consent_email FROM p
  UNION ALL (
    SELECT k.id, k.email, k.consent_email FROM patient k, {_record(Patient, "p")}
    WHERE {match} ORDER BY k.id LIMIT 1
  )
), r AS (
  {_insert(ConsultationRequest, "r", "who.id", "who")}
  RETURNING id, patient_id
), a AS (
  {_insert(AuditEvent, "a", "r.patient_id, CAST(r.id AS varchar)", "r")}
  RETURNING id
), n AS (
  {_insert(Notification, "n", "r.patient_id, r.id", "r JOIN who ON who.id = r.patient_id")}
  WHERE {wants_email}
  RETURNING id
)
SELECT (SELECT id FROM p), r.id, r.patient_id, (SELECT id FROM a), (SELECT id FROM n) FROM r"""  # noqa: S608 (names from the models, values bound)
    return sql


def _insert(model, param: str, linked: str, joined: str) -> str:
    """``INSERT ... SELECT`` of one row from the JSON parameter ``param`` (as ``v``), its
    ``_LINKS`` columns taken from ``linked``, expressions on the rows in ``joined``."""
    own = [name for name in database.insert_columns(model) if name not in _LINKS[model]]
    columns = ", ".join([*own, *_LINKS[model]])
    values = ", ".join([*(f"v.{name}" for name in own), *filter(None, [linked])])
    sources = ", ".join(filter(None, [joined, _record(model, param)]))
    return f"INSERT INTO {model.__tablename__} ({columns}) SELECT {values} FROM {sources}"  # noqa: S608 (names from the models)


def _record(model, param: str) -> str:
    """The row given as the JSON parameter ``param``, as a record ``v`` of the model's table."""
    table = model.__tablename__
    return f"json_populate_record(CAST(NULL AS {table}), CAST(%({param})s AS json)) AS v"


@functools.cache
def _known_patient():
    """The id of a patient with the new record's name, birth date and email (``_MATCH_SQL``
    asks the same); its parameters are the new record's columns. Built once (building it cost
    more CPU than running it)."""
    patient = Patient.__table__.c
    return (
        select(patient.id)
        .where(
            patient.email == bindparam("email"),  # stored lower-case (schema.py), indexed
            patient.date_of_birth == bindparam("date_of_birth"),
            func.lower(patient.first_name) == func.lower(bindparam("first_name")),
            func.lower(patient.last_name) == func.lower(bindparam("last_name")),
        )
        .order_by(patient.id)
        .limit(1)
    )


@functools.cache
def _patient_is_known():
    return _known_patient().exists()
