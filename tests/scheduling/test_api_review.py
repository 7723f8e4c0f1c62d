"""The API against PRODUCT.md's fixed interface: bad input, error bodies, the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.scheduling.models import Appointment, AppointmentStatus
from tests.conftest import clock_at
from tests.scheduling.conftest import staff_booking

BOOK = "/api/v1/appointments"
SLOTS = "/api/v1/slots"
INTAKE = "/api/v1/consultation-requests"
PROCEDURES = "/api/v1/procedures"
NUL = "a\x00b"  # PostgreSQL text can't hold it
SURROGATE = "\ud800"  # a lone surrogate from a broken JSON escape: not UTF-8


@pytest.fixture
def booked(client, schedule, staff_token):
    """A front-desk token and one booked appointment's id."""
    headers = staff_token("front_desk")
    response = client.post(BOOK, headers=headers, json=staff_booking(schedule))
    assert response.status_code == 201, response.get_json()
    return headers, response.get_json()["id"]


def appointment_state(app, appointment_id):
    with app.app_context():
        row = db.session.get(Appointment, appointment_id)
        return row.status, row.start_at, row.cancel_reason


def appointment_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Appointment))


# -- a per-day cap is a 409 that says why --------------------------------------------------------


def test_a_daily_cap_409_says_why_on_booking_and_on_moving(app, client, schedule, staff_token):
    from clinic.scheduling.models import AppointmentType

    with app.app_context():
        db.session.get(AppointmentType, schedule["types"]["procedure"]).daily_cap = 1
        db.session.commit()
    headers = staff_token("front_desk")

    def book(start, patient):
        body = staff_booking(schedule, patient, start, appointment_type="procedure")
        return client.post(BOOK, headers=headers, json=body)

    assert book("2026-12-15T08:00:00-05:00", 0).status_code == 201
    refused = book("2026-12-15T13:30:00-05:00", 1)
    body = refused.get_json()
    assert refused.status_code == 409
    assert body["error"] == "slot_unavailable"  # the fixed interface's code stays
    assert body["code"] == "daily_cap_reached"
    assert "cap of 1" in body["detail"]
    other_day = book("2026-12-16T08:00:00-05:00", 1)
    moved = client.post(
        f"{BOOK}/{other_day.get_json()['id']}/reschedule",
        headers=headers,
        json={"start": "2026-12-15T13:30:00-05:00"},
    )
    assert moved.status_code == 409 and moved.get_json()["code"] == "daily_cap_reached"
    assert moved.get_json()["detail"]
    # a plain taken slot keeps the interface's exact body
    taken = book("2026-12-15T08:00:00-05:00", 2)
    assert taken.status_code == 409 and taken.get_json() == {"error": "slot_unavailable"}


# -- text the database can't store, JSON a parser can't read --------------------------------------


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_unstorable_text_in_a_booking_is_a_field_error(app, client, schedule, booked, bad):
    headers, _ = booked
    staff = client.post(
        BOOK, headers=headers, json=staff_booking(schedule, 1, appointment_type=bad)
    )
    assert staff.status_code == 422 and "appointment_type" in staff.get_json()["errors"]
    patient = client.post(
        BOOK,
        json={
            "booking_token": bad,
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][0],
            "start": "2026-11-27T09:00:00-05:00",
        },
    )
    assert patient.status_code == 422 and "booking_token" in patient.get_json()["errors"]
    assert appointment_count(app) == 1


def test_unstorable_text_in_queries_is_a_field_error(app, client, schedule, booked):
    headers, _ = booked
    query = {"appointment_type": NUL, "start": "2026-12-01", "end": "2026-12-02"}
    found = client.get(SLOTS, query_string=query)
    assert found.status_code == 422 and "appointment_type" in found.get_json()["errors"]
    listed = client.get(
        BOOK,
        headers=headers,
        query_string={"start": "2026-11-20", "end": "2026-11-30", "status": NUL},
    )
    assert listed.status_code == 422 and "status" in listed.get_json()["errors"]


@pytest.mark.parametrize(
    "bad",
    [NUL, SURROGATE, ["a list"], {"an": "object"}, 5],
    ids=["nul", "surrogate", "list", "object", "number"],
)
@pytest.mark.parametrize(("action", "body"), [("cancel", {}), ("status", {"status": "noshow"})])
def test_a_reason_that_is_not_storable_text_is_a_field_error(
    app, client, booked, bad, action, body
):
    headers, appointment_id = booked
    before = appointment_state(app, appointment_id)
    response = client.post(
        f"{BOOK}/{appointment_id}/{action}", headers=headers, json={**body, "reason": bad}
    )
    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["errors"]) == ["reason"]
    assert before[0] == AppointmentStatus.BOOKED
    assert appointment_state(app, appointment_id) == before


def test_an_idempotency_key_with_control_characters_is_a_422(app, client, schedule, booked):
    headers, _ = booked
    response = client.post(
        BOOK, headers=headers | {"Idempotency-Key": "key\x00"}, json=staff_booking(schedule, 1)
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert appointment_count(app) == 1


@pytest.mark.parametrize("url", [INTAKE, BOOK, PROCEDURES])
@pytest.mark.parametrize(
    "nested",
    ["[" * 50_000 + "]" * 50_000, '{"a":' * 30_000 + "1" + "}" * 30_000],
    ids=["arrays", "objects"],
)
def test_json_nested_too_deeply_is_a_422(app, client, staff_token, url, nested):
    headers = staff_token("nurse")
    response = client.post(url, headers=headers, data=nested, content_type="application/json")
    assert response.status_code == 422, response.status_code
    assert response.get_json()["errors"]["_body"]


# -- the staff list: filters are checked -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "2026-11-20", "end": "2026-11-30", "status": "bogus"}, "status"),
        ({"start": "2026-11-30", "end": "2026-11-20"}, "end"),
        ({"start": "2026-11-20T10:00:00-05:00", "end": "2026-11-20T10:00:00-05:00"}, "end"),
        ({"end": "2026-11-20"}, "start"),
    ],
)
def test_listing_refuses_bad_filters_with_a_field_error(client, booked, query, field):
    headers, _ = booked
    response = client.get(BOOK, headers=headers, query_string=query)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_listing_filters_by_each_status(client, booked):
    headers, appointment_id = booked
    query = {"start": "2026-11-20", "end": "2026-11-30"}
    booked_rows = client.get(BOOK, headers=headers, query_string=query | {"status": "booked"})
    assert [a["id"] for a in booked_rows.get_json()] == [appointment_id]
    none = client.get(BOOK, headers=headers, query_string=query | {"status": "checked-in"})
    assert none.status_code == 200 and none.get_json() == []


# -- a booking's start is a moment, not a day -----------------------------------------------------


def test_a_booking_start_without_a_time_is_a_field_error(app, client, schedule, booked):
    headers, appointment_id = booked
    created = client.post(BOOK, headers=headers, json=staff_booking(schedule, 1, "2026-11-27"))
    assert created.status_code == 422 and "start" in created.get_json()["errors"]
    before = appointment_state(app, appointment_id)
    moved = client.post(
        f"{BOOK}/{appointment_id}/reschedule", headers=headers, json={"start": "2026-11-27"}
    )
    assert moved.status_code == 422 and "start" in moved.get_json()["errors"]
    assert appointment_state(app, appointment_id) == before


# -- Idempotency-Key on every staff POST ---------------------------------------------------------


def test_a_retried_status_change_gets_the_first_answer(app, client, booked):
    headers, appointment_id = booked
    clock_at(app, "2026-11-26T09:00:00-05:00")  # its day: the desk may mark it arrived
    url = f"{BOOK}/{appointment_id}/status"
    keyed = headers | {"Idempotency-Key": "arrive-1"}
    first = client.post(url, headers=keyed, json={"status": "arrived"})
    again = client.post(url, headers=keyed, json={"status": "arrived"})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"


# -- the OpenAPI document: every answer the API gives, examples that keep working ----------------


def _operation(spec, url: str, method: str) -> dict:
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\{\w+\}", r"[^/]+", template) + "$"
        if re.match(pattern, url) and method in ops:
            return ops[method]
    raise AssertionError(f"{method} {url} is not documented")


def test_list_appointments_documents_its_422_and_403(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    responses = spec["paths"][BOOK]["get"]["responses"]
    assert {"200", "401", "403", "422"} <= set(responses)
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Errors"
    }


def test_every_answer_the_api_gives_is_documented(
    app, client, schedule, staff_token, booking_token, make_request
):
    """Drive each endpoint to each status it can answer; the document must list it."""
    spec = client.get("/api/v1/openapi.json").get_json()
    front = staff_token("front_desk")
    nurse = staff_token("nurse")
    billing = staff_token("billing")
    admin = staff_token("admin")
    seen: list[tuple[str, str, int]] = []

    def call(method, url, expected, **kwargs):
        response = getattr(client, method)(url, **kwargs)
        assert response.status_code == expected, (method, url, response.get_json())
        seen.append((method, url.split("?")[0], expected))
        return response

    big = {"reason": "x" * 300_000}
    call("get", "/api/v1/appointment-types", 200)
    call("get", "/api/v1/providers", 200)
    day = {"appointment_type": "consultation", "start": "2026-12-01", "end": "2026-12-01"}
    call("get", SLOTS, 200, query_string=day)
    call("get", SLOTS, 422, query_string={})
    first = call("post", BOOK, 201, headers=front, json=staff_booking(schedule)).get_json()
    call("post", BOOK, 409, headers=front, json=staff_booking(schedule, 1))
    call("post", BOOK, 422, headers=front, json={})
    call("post", BOOK, 401, headers={"Authorization": "Bearer nope"}, json={})
    call("post", BOOK, 403, headers=billing, json=staff_booking(schedule, 1))
    call("post", BOOK, 413, headers=front, json=big)
    listing = {"start": "2026-11-20", "end": "2026-11-30"}
    call("get", BOOK, 200, headers=front, query_string=listing)
    call("get", BOOK, 401, query_string=listing)
    call("get", BOOK, 403, headers=admin, query_string=listing)
    call("get", BOOK, 422, headers=front, query_string={})
    one = f"{BOOK}/{first['id']}"
    clock_at(app, "2026-11-26T10:00:00-05:00")  # the visits' day: desk statuses are open
    for action, body in [
        ("reschedule", {"start": "2026-11-26T10:00:00-05:00"}),
        ("status", {"status": "arrived"}),
        ("cancel", {"reason": "Patient called"}),
    ]:
        # bad input first: once cancelled, the state refuses everything (409)
        call("post", f"{one}/{action}", 422, headers=front, json={"start": 1, "status": 1})
        call("post", f"{one}/{action}", 200, headers=front, json=body)
        call("post", f"{one}/{action}", 401, json=body)
        call("post", f"{one}/{action}", 403, headers=billing, json=body)
        call("post", f"{BOOK}/999999/{action}", 404, headers=front, json=body)
        call("post", f"{one}/{action}", 413, headers=front, json=big)
    # a no-show put back on a time someone else took meanwhile
    second = call("post", BOOK, 201, headers=front, json=staff_booking(schedule, 2)).get_json()
    call("post", f"{BOOK}/{second['id']}/status", 200, headers=front, json={"status": "noshow"})
    call("post", BOOK, 201, headers=front, json=staff_booking(schedule, 3))
    call("post", f"{BOOK}/{second['id']}/status", 409, headers=front, json={"status": "booked"})
    call(
        "post",
        f"{BOOK}/{second['id']}/reschedule",
        409,
        headers=front,
        json={"start": "2026-11-26T10:00:00-05:00"},
    )
    procedure = {
        "patient_id": schedule["patients"][0],
        "performed_on": "2026-11-20",
        "provider_id": schedule["providers"][0],
    }
    call("post", PROCEDURES, 201, headers=nurse, json=procedure)
    call("post", PROCEDURES, 401, json=procedure)
    call("post", PROCEDURES, 403, headers=front, json=procedure)
    call("post", PROCEDURES, 413, headers=nurse, json=big)
    call("post", PROCEDURES, 422, headers=nurse, json={})
    patient = f"/api/v1/patients/{schedule['patients'][0]}/notifications"
    call("get", patient, 200, headers=front)
    call("get", patient, 401)
    call("get", patient, 403, headers=billing)
    call("get", "/api/v1/patients/999999/notifications", 404, headers=front)
    from tests.conftest import example_values

    created = call("post", INTAKE, 201, json=example_values()).get_json()
    call("post", INTAKE, 422, json={})
    call("post", INTAKE, 413, json=dict(example_values(), med_list="x" * 300_000))
    call("get", f"{INTAKE}/{created['id']}", 200, headers=nurse)
    call("get", f"{INTAKE}/{created['id']}", 401)
    call("get", f"{INTAKE}/{created['id']}", 403, headers=admin)
    call("get", f"{INTAKE}/999999", 404, headers=nurse)
    missing = []
    for method, url, status in seen:
        if str(status) not in _operation(spec, url, method)["responses"]:
            missing.append((method, url, status))
    assert not missing


def test_rate_limits_and_idempotency_conflicts_are_documented(client):
    """429 on every rate-limited route; 409 (a racing retry) and 422 (a reused key) wherever
    an Idempotency-Key is accepted."""
    spec = client.get("/api/v1/openapi.json").get_json()
    limited = {"/api/v1/appointment-types", "/api/v1/providers", SLOTS, BOOK, INTAKE}
    for path in limited:
        for method, op in spec["paths"][path].items():
            if path == BOOK and method == "get":
                continue  # the staff list is behind a token, not the public limit
            assert "429" in op["responses"], (path, method)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "post":
                names = [p.get("name") for p in op.get("parameters", [])]
                assert "Idempotency-Key" in names, path
                assert {"409", "413", "422"} <= set(op["responses"]), path


@pytest.mark.parametrize(
    "now",
    [
        datetime(2027, 7, 14, 16, 0, tzinfo=UTC),  # summer: -04:00
        datetime(2028, 1, 10, 15, 0, tzinfo=UTC),  # winter: -05:00
    ],
)
def test_the_documented_examples_work_on_any_day(
    app, client, schedule, booking_token, staff_token, now
):
    from openapi_spec_validator import validate

    app.config["CLINIC_NOW"] = now
    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)

    def example(path, method="post"):
        return dict(
            spec["paths"][path][method]["requestBody"]["content"]["application/json"]["example"]
        )

    body = example(BOOK)
    body |= {
        "booking_token": booking_token(schedule["patients"][0]),
        "provider_id": schedule["providers"][0],
    }
    created = client.post(BOOK, json=body)
    assert created.status_code == 201, created.get_json()
    headers = staff_token("front_desk")
    for action in ("reschedule", "status", "cancel"):
        url = f"{BOOK}/{created.get_json()['id']}/{action}"
        answer = client.post(url, headers=headers, json=example(f"{BOOK}/{{id}}/{action}"))
        assert answer.status_code == 200, (action, answer.get_json())
        if action == "reschedule":  # the status example records the visit: go to its start
            clock_at(app, answer.get_json()["start"])
    clock_at(app, now)
    procedure = example(PROCEDURES) | {
        "patient_id": schedule["patients"][0],
        "provider_id": schedule["providers"][0],
    }
    recorded = client.post(PROCEDURES, headers=staff_token("nurse"), json=procedure)
    assert recorded.status_code == 201, recorded.get_json()
    intake = client.post(INTAKE, json=example(INTAKE))
    assert intake.status_code == 201, intake.get_json()


def _inline(node, spec):
    """A schema with its #/components/schemas references replaced by what they name."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref:
            return _inline(spec["components"]["schemas"][ref.rsplit("/", 1)[1]], spec)
        return {k: _inline(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, spec) for v in node]
    return node


def test_real_answers_match_their_documented_schemas(
    app, client, schedule, staff_token, booking_token
):
    from openapi_schema_validator import OAS30Validator

    from tests.conftest import example_values

    spec = client.get("/api/v1/openapi.json").get_json()
    front = staff_token("front_desk")
    nurse = staff_token("nurse")

    def check(method, url, path, expected, **kwargs):
        response = getattr(client, method)(url, **kwargs)
        assert response.status_code == expected, response.get_json()
        documented = spec["paths"][path][method]["responses"][str(expected)]
        schema = _inline(documented["content"]["application/json"]["schema"], spec)
        errors = [e.message for e in OAS30Validator(schema).iter_errors(response.get_json())]
        assert not errors, (method, path, errors)
        return response.get_json()

    check("get", "/api/v1/appointment-types", "/api/v1/appointment-types", 200)
    check("get", "/api/v1/providers", "/api/v1/providers", 200)
    day = {"appointment_type": "consultation", "start": "2026-12-01", "end": "2026-12-01"}
    check("get", SLOTS, SLOTS, 200, query_string=day)
    created = check("post", INTAKE, INTAKE, 201, json=example_values())
    check(
        "get", f"{INTAKE}/{created['id']}", "/api/v1/consultation-requests/{id}", 200, headers=nurse
    )
    body = {
        "booking_token": created["booking_token"],
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-12-01T09:00:00-05:00",
    }
    booked = check("post", BOOK, BOOK, 201, json=body)
    check("post", BOOK, BOOK, 409, json=dict(body, start="2026-12-01T10:00:00-05:00"))
    check("post", BOOK, BOOK, 422, json={})
    check("post", BOOK, BOOK, 401, headers={"Authorization": "Bearer nope"}, json={})
    listing = {"start": "2026-11-20", "end": "2026-12-30"}
    check("get", BOOK, BOOK, 200, headers=front, query_string=listing)
    clock_at(app, booked["start"])  # the desk marks the visit arrived at its time
    check(
        "post",
        f"{BOOK}/{booked['id']}/status",
        f"{BOOK}/{{id}}/status",
        200,
        headers=front,
        json={"status": "arrived"},
    )
    procedure = {
        "patient_id": created["patient_id"],
        "performed_on": "2026-11-20",
        "provider_id": schedule["providers"][0],
    }
    check("post", PROCEDURES, PROCEDURES, 201, headers=nurse, json=procedure)
    url = f"/api/v1/patients/{created['patient_id']}/notifications"
    rows = check("get", url, "/api/v1/patients/{patient_id}/notifications", 200, headers=front)
    assert rows


def _key_in_progress(app, headers, body: dict, key: str, age: timedelta = timedelta(0)):
    """A booking's Idempotency-Key claimed ``age`` ago by a request that has not answered;
    returns a function that retries the booking with that key."""
    import hashlib
    import json

    from clinic.api import idempotency
    from clinic.models import utcnow
    from clinic.scheduling.models import IdempotencyRecord

    caller = hashlib.sha256(headers["Authorization"].encode()).hexdigest()[:32]
    raw = json.dumps(body).encode()
    with app.app_context():
        db.session.add(
            IdempotencyRecord(
                key=key,
                endpoint=f"POST {BOOK} {caller}",
                request_hash=hashlib.sha256(raw).hexdigest(),
                status_code=idempotency.IN_PROGRESS,
                body={},
                created_at=utcnow() - age,
            )
        )
        db.session.commit()
    client = app.test_client()
    return lambda: client.post(
        BOOK, headers=headers | {"Idempotency-Key": key}, data=raw, content_type="application/json"
    )


def test_a_retry_while_the_first_is_running_gets_a_409_that_says_why(
    app, client, schedule, booked, monkeypatch
):
    from clinic.api import idempotency

    headers, _ = booked
    body = staff_booking(schedule, 1, "2026-11-27T09:00:00-05:00")
    retry = _key_in_progress(app, headers, body, "slow-1")
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.0)
    response = retry()
    assert response.status_code == 409
    assert response.get_json()["error"] == "in_progress" and response.get_json()["detail"]
    assert appointment_count(app) == 1


def test_a_key_whose_first_request_died_is_taken_over_by_a_retry(app, client, schedule, booked):
    """In progress for longer than any request can run: its process died before storing the
    answer. The retry runs, and its answer is kept for the next one."""
    from clinic.api import idempotency

    headers, _ = booked
    body = staff_booking(schedule, 1, "2026-11-27T09:00:00-05:00")
    age = idempotency.ABANDONED_AFTER + timedelta(seconds=1)
    post = _key_in_progress(app, headers, body, "dead-1", age)
    first = post()
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert appointment_count(app) == 2
    again = post()
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert appointment_count(app) == 2
