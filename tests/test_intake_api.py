"""POST /api/v1/consultation-requests and the OpenAPI document, over HTTP on PostgreSQL."""

from datetime import UTC, datetime

import pytest
from openapi_schema_validator import OAS30Validator
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent, Patient
from tests.conftest import example_values
from tests.limits import ALL_CASES, ALL_SHOWN, with_value

URL = "/api/v1/consultation-requests"


def count(app, model=ConsultationRequest):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_example_is_accepted_and_stored(app, client):
    response = client.post(URL, json=example_values())
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "patient_id", "triage", "booking_token"}
    assert body["triage"] == "routine"
    with app.app_context():
        req = db.session.get(ConsultationRequest, body["id"])
        assert req.patient_id == body["patient_id"]
        assert req.form_version.startswith("intake-")
        assert req.rules_version.startswith("red-flags-")
        assert req.source == "api" and req.completed_by == "self" and req.complete
        assert req.answers["symptom_duration"] == "1_2y"
        assert req.answers["phone_mobile"] == "+15552010123"
        assert req.consents["ack_npp"] == {"value": True, "text_version": "npp-2026-01"}
        # voicemail_ok is asked with the contact details; the record keeps it as a consent
        assert req.consents["consent_voicemail"] == {
            "value": bool(example_values()["voicemail_ok"]),
            "text_version": "consent-voicemail-2026-01",
        }
        assert "voicemail_ok" not in req.consents
        assert req.consents["_meta"]["at"] == "2026-11-24T15:00:00+00:00"
        assert req.submitted_at == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
        assert {s["code"] for s in req.candidacy_signals} >= {"NC_PATTERN", "MEDICARE_CED"}


def test_the_same_person_twice_is_one_patient(app, client):
    first = client.post(URL, json=example_values()).get_json()
    second = client.post(URL, json=example_values()).get_json()
    other = client.post(URL, json=example_values(email="someone.else@example.com")).get_json()
    assert first["patient_id"] == second["patient_id"] != other["patient_id"]
    assert first["id"] != second["id"]


def test_a_known_patient_is_found_whatever_the_case_and_keeps_their_details(app, client):
    first = client.post(URL, json=example_values()).get_json()
    again = example_values(first_name="MARGARET", last_name="okafor", phone_mobile="555-201-0199")
    second = client.post(URL, json=again).get_json()
    assert second["patient_id"] == first["patient_id"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Patient)) == 1
        patient = db.session.get(Patient, first["patient_id"])
        # an unauthenticated form does not rewrite a known patient's name or phone number
        assert (patient.first_name, patient.phone_mobile) == ("Margaret", "+15552010123")
        assert patient.created_at == patient.updated_at == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_emergency_is_saved_without_a_booking_token(app, client):
    response = client.post(URL, json=example_values(rf_saddle_numbness="worsening"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["triage"] == "emergency" and "booking_token" not in body
    with app.app_context():
        req = db.session.get(ConsultationRequest, body["id"])
        assert req.red_flags == [
            {"field": "rf_saddle_numbness", "tier": "emergency", "answer": "worsening"}
        ]
        raised = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "red_flag_raised")
        ).all()
        assert [e.resource_id for e in raised] == [str(req.id)]


def test_a_request_made_through_the_api_is_audited_as_created_by_the_patient(app, client):
    body = client.post(URL, json=example_values()).get_json()
    with app.app_context():
        [event] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource_id == str(body["id"]))
        ).all()
    assert (event.action, event.actor_id, event.actor_role) == ("create", None, "patient")
    assert (event.resource_type, event.patient_id) == ("consultation_request", body["patient_id"])
    assert event.changed_fields == ["answers", "triage"]
    assert event.reason == "intake completed (api)"


def test_urgent_gets_a_same_day_callback(app, client):
    body = client.post(URL, json=example_values(rf_trauma="new")).get_json()
    assert body["triage"] == "urgent" and body["booking_token"]
    with app.app_context():
        req = db.session.get(ConsultationRequest, body["id"])
        # Tuesday 10:00 in New York: call back by 17:00 New York the same day.
        assert req.callback_due_at == datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


def test_urgent_after_hours_is_due_the_next_business_day(app, client):
    app.config["CLINIC_NOW"] = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # Friday 18:30 NY
    body = client.post(URL, json=example_values(rf_fever="new")).get_json()
    with app.app_context():
        req = db.session.get(ConsultationRequest, body["id"])
        assert req.callback_due_at == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # Monday


@pytest.mark.parametrize(
    ("field_id", "value", "ok"),
    ALL_CASES,
    ids=[f"{c[0]}={str(c[1])[:20]!s}-{c[2]}" for c in ALL_CASES],
)
def test_every_field_limit(app, client, field_id, value, ok):
    response = client.post(URL, json=with_value(field_id, value))
    if ok:
        assert response.status_code == 201, response.get_json()
    else:
        assert response.status_code == 422
        errors = response.get_json()["errors"]
        assert list(errors) == [field_id]
        assert errors[field_id] and all(isinstance(m, str) for m in errors[field_id])
        assert count(app) == 0


def test_bad_input_never_loses_what_was_saved(app, client):
    saved = client.post(URL, json=ALL_SHOWN).get_json()
    bad_bodies = [with_value("nprs_back_now", 11), {"first_name": "x"}, with_value("email", 5)]
    for body in bad_bodies:
        assert client.post(URL, json=body).status_code == 422
    assert client.post(URL, data="{not json", content_type="application/json").status_code == 422
    assert count(app) == 1 and count(app, Patient) == 1
    with app.app_context():
        req = db.session.get(ConsultationRequest, saved["id"])
        assert req.answers["nprs_back_now"] == ALL_SHOWN["nprs_back_now"]


@pytest.mark.parametrize(
    ("field_id", "value"),
    [("referring_provider_npi", "²" * 10), ("phone_mobile", "５５５２０１０１２３")],
)
def test_digits_from_other_scripts_are_a_422(app, client, field_id, value):
    response = client.post(URL, json=example_values(**{field_id: value}))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field_id]
    assert count(app) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": "{not json", "content_type": "application/json"}, "JSON object"),
        ({"data": "first_name=Ann", "content_type": "application/x-www-form-urlencoded"}, "JSON"),
        ({"json": ["a", "list"]}, "JSON object"),
        ({"json": "a string"}, "JSON object"),
        ({"json": None}, "JSON object"),
    ],
)
def test_malformed_bodies(app, client, kwargs, message):
    response = client.post(URL, **kwargs)
    assert response.status_code == 422
    assert message in " ".join(response.get_json()["errors"]["_body"])


def test_missing_everything_lists_each_required_field(app, client):
    response = client.post(URL, json={})
    errors = response.get_json()["errors"]
    assert response.status_code == 422
    assert {"first_name", "date_of_birth", "rf_bowel", "ack_npp", "e_signature"} <= set(errors)


def test_unknown_field_is_named(app, client):
    response = client.post(URL, json=dict(example_values(), shoe_size=11))
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"shoe_size": ["Unknown field."]}


def test_oversized_body_is_refused_with_a_clear_error(app, client):
    body = dict(example_values(), med_list="x" * 300_000)
    response = client.post(URL, json=body)
    assert response.status_code == 413
    assert response.get_json()["errors"]["_body"] == ["The request body is too large."]
    assert count(app) == 0


def test_openapi_is_valid_and_its_example_works(app, client):
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    post = spec["paths"][URL]["post"]
    example = post["requestBody"]["content"]["application/json"]["example"]
    schema = spec["components"]["schemas"]["ConsultationRequestInput"]
    assert set(example) <= set(schema["properties"])
    assert set(schema["required"]) <= set(example)
    assert schema["properties"]["nprs_back_now"]["maximum"] == 10
    assert schema["properties"]["rf_bowel"]["enum"] == ["no", "new", "worsening", "longstanding"]
    assert schema["properties"]["ack_npp"]["enum"] == [True]
    assert "rf_trauma" in str(schema["properties"]["rf_trauma_recheck"]["x-shown-when"])
    OAS30Validator(schema).validate(example)
    assert client.post(URL, json=example).status_code == 201


def test_the_documented_schema_agrees_with_the_api(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    documented = OAS30Validator(spec["components"]["schemas"]["ConsultationRequestInput"])
    example = example_values()
    bodies = {
        "unticked ack": dict(example, ack_npp=False),
        "null required": dict(example, first_name=None),
        "null with a default": dict(example, preferred_language=None),
        "left out, has a default": {k: v for k, v in example.items() if k != "preferred_language"},
        "null optional": dict(example, member_id=None),
        "a choice twice": dict(example, symptom_locations=["thigh", "thigh", "buttock"]),
        "a number as text": dict(example, nprs_back_now="5"),
        "an unknown code": dict(example, symptom_locations=["elbow"]),
    }
    for name, body in bodies.items():
        api_ok = client.post(URL, json=body).status_code == 201
        assert documented.is_valid(body) == api_ok, name


# -- the staff read endpoint --------------------------------------------------------------------


@pytest.fixture
def token_for(app, make_staff):
    from clinic.staff import services

    def make(role):
        user_id = make_staff(role)
        with app.app_context():
            from clinic.models import StaffUser

            token = services.create_api_token(
                db.session.get(StaffUser, user_id), now=datetime.now(UTC)
            )
            db.session.commit()
            return {"Authorization": f"Bearer {token}"}

    return make


def test_staff_read_respects_roles(app, client, make_request, token_for):
    request_id = make_request(rf_bowel="new")
    url = f"{URL}/{request_id}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(url, headers=token_for("admin")).status_code == 403

    nurse = client.get(url, headers=token_for("nurse")).get_json()
    assert nurse["red_flags"][0]["field"] == "rf_bowel"
    assert nurse["answers"]["max_walking_minutes"] == 5
    assert any(s["code"] == "NC_PATTERN" for s in nurse["candidacy_signals"])

    front = client.get(url, headers=token_for("front_desk")).get_json()
    assert front["red_flag"] is True and "red_flags" not in front
    assert "max_walking_minutes" not in front["answers"]
    assert "rf_bowel" not in front["answers"]
    assert front["answers"]["first_name"] == "Margaret"
    assert front["candidacy_signals"] == []

    billing = client.get(url, headers=token_for("billing")).get_json()
    assert [s["level"] for s in billing["candidacy_signals"]] == ["coverage"]
    with app.app_context():
        views = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).all()
        assert len(views) == 3


def test_a_retried_intake_is_stored_once(app, client):
    headers = {"Idempotency-Key": "intake-retry-1"}
    first = client.post(URL, json=example_values(), headers=headers)
    second = client.post(URL, json=example_values(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert count(app) == 1


def test_two_patients_who_pick_the_same_key_each_get_their_own_answer(app, client, token_for):
    """Anonymous callers cannot be told apart: the key is scoped by what they send, so another
    patient's intake under the same key is neither refused nor answered with the first one."""
    headers = {"Idempotency-Key": "1"}
    first = client.post(URL, json=example_values(), headers=headers)
    other = client.post(
        URL,
        json=example_values(first_name="Dolores", email="dolores@example.com"),
        headers=headers,
    )
    assert first.status_code == other.status_code == 201
    assert other.get_json()["id"] != first.get_json()["id"]
    assert other.get_json()["booking_token"] != first.get_json()["booking_token"]
    assert "Idempotent-Replayed" not in other.headers
    again = client.post(URL, json=example_values(), headers=headers)  # the first one's retry
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert count(app) == 2

    # A staff caller is known by its token: its key with another body is a mistake, said so.
    staff = {**headers, **token_for("front_desk")}
    assert client.post(URL, json=example_values(), headers=staff).status_code == 201
    reused = client.post(URL, json=example_values(last_name="Okafor-Ray"), headers=staff)
    assert reused.status_code == 422
    assert reused.get_json()["errors"]["Idempotency-Key"] == [
        "This key was used with a different request body."
    ]


def test_a_matching_submission_does_not_rewrite_the_patients_contact_details(app, client):
    first = client.post(URL, json=example_values()).get_json()
    client.post(
        URL,
        json=example_values(
            phone_mobile="555-999-0000", consent_email=False, preferred_contact="phone_call"
        ),
    )
    with app.app_context():
        patient = db.session.get(Patient, first["patient_id"])
        assert patient.phone_mobile == "+15552010123" and patient.consent_email is True


def test_staff_read_gives_clinicians_the_intake_odi(app, client, odi_pack, token_for):
    body = example_values(**{f"odi_{i}": 2 for i in range(1, 11)})
    url = f"{URL}/{client.post(URL, json=body).get_json()['id']}"
    nurse = client.get(url, headers=token_for("nurse")).get_json()
    assert nurse["answers"]["odi_pct"] == 40 and nurse["answers"]["odi_1"] == 2
    assert nurse["answers"]["odi_version"] == "test-pack-1"
    front = client.get(url, headers=token_for("front_desk")).get_json()
    assert not any(k.startswith("odi_") for k in front["answers"])
