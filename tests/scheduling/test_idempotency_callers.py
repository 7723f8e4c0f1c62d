"""Idempotency-Keys are per caller: a patient booking with a token is its own caller."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from clinic.extensions import db
from clinic.scheduling.models import Appointment, IdempotencyRecord
from tests.scheduling.conftest import patient_booking

BOOK = "/api/v1/appointments"


def test_two_patients_who_pick_the_same_key_each_get_their_own_answer(
    app, client, schedule, booking_token
):
    headers = {"Idempotency-Key": "my-booking"}
    first = patient_booking(schedule, booking_token, 0, "2026-11-25T09:00:00-05:00")
    second = patient_booking(schedule, booking_token, 1, "2026-11-25T10:00:00-05:00")
    one = client.post(BOOK, json=first, headers=headers)
    other = client.post(BOOK, json=second, headers=headers)
    assert one.status_code == other.status_code == 201, other.get_json()
    assert "Idempotent-Replayed" not in other.headers
    assert other.get_json()["id"] != one.get_json()["id"]
    assert other.get_json()["manage_url"] != one.get_json()["manage_url"]
    # each one's retry replays its own answer
    for body, answer in ((first, one), (second, other)):
        retry = client.post(BOOK, json=body, headers=headers)
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.get_json() == answer.get_json()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 2
        records = db.session.execute(
            select(IdempotencyRecord.key, IdempotencyRecord.endpoint)
        ).all()
    assert len(records) == 2
    # the caller is named by a hash of the token: neither token is stored
    stored = json.dumps([list(r) for r in records])
    for body in (first, second):
        assert body["booking_token"] not in stored
        assert body["booking_token"][:16] not in stored


def test_a_booking_token_that_is_not_text_is_a_field_error_with_a_key(app, client, schedule):
    """The caller is named from the body before the view reads it: odd bodies stay 422s."""
    headers = {"Idempotency-Key": "odd-1", "Content-Type": "application/json"}
    base = '{"appointment_type": "consultation", "provider_id": 1, "start": "2026-11-25T09:00"'
    for token in ('"\\ud800"', "[1, 2]", "null", '""'):
        response = client.post(BOOK, data=f'{base}, "booking_token": {token}}}', headers=headers)
        assert response.status_code == 422, (token, response.status_code)
        assert "booking_token" in response.get_json()["errors"], token
        headers["Idempotency-Key"] += "1"
