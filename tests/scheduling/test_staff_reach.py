"""How far back and ahead staff may book and move: a walk-in entered after the fact, but not a
typo'd year booked and emailed to the patient; and what the patient is sent about each. The
clock is tests.conftest.FIXED_NOW: Tuesday 2026-11-24, 10:00 in New York."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.notifications.models import Notification
from tests.scheduling.conftest import staff_booking

BOOK = "/api/v1/appointments"


def messages(app, appointment_id: int) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(
            select(Notification)
            .where(
                Notification.cause_type == "appointment", Notification.cause_id == appointment_id
            )
            .order_by(Notification.id)
        )
        return [(r.kind, r.status, r.last_error) for r in rows]


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ("1926-11-23T09:00:00-05:00", "no more than 24 hours ago"),
        ("2026-11-23T09:00:00-05:00", "no more than 24 hours ago"),  # 25 hours ago
        ("2027-11-25T09:00:00-05:00", "no more than a year ahead"),
        ("2062-11-24T09:00:00-05:00", "no more than a year ahead"),
    ],
)
def test_staff_cannot_book_days_back_or_years_ahead(
    app, client, schedule, staff_token, start, message
):
    response = client.post(
        BOOK, headers=staff_token("front_desk"), json=staff_booking(schedule, start=start)
    )
    assert response.status_code == 422
    assert any(message in m for m in response.get_json()["errors"]["start"])
    with app.app_context():
        assert db.session.scalars(select(Notification)).all() == []


def test_a_walk_in_entered_after_the_fact_is_booked_but_not_confirmed(
    app, client, schedule, staff_token
):
    """09:00 today, entered at 10:00: booked, and nothing emailed about a visit under way."""
    headers = staff_token("front_desk")
    response = client.post(
        BOOK, headers=headers, json=staff_booking(schedule, start="2026-11-24T09:00:00-05:00")
    )
    assert response.status_code == 201, response.get_json()
    sent = messages(app, response.get_json()["id"])
    assert ("confirmation", "skipped", "the visit had begun") in sent
    assert not [m for m in sent if m[1] in ("pending", "sending")]


def test_a_year_ahead_is_the_limit(app, client, schedule, staff_token):
    headers = staff_token("front_desk")
    ok = client.post(
        BOOK, headers=headers, json=staff_booking(schedule, start="2027-11-22T09:00:00-05:00")
    )
    assert ok.status_code == 201, ok.get_json()  # past the type's horizon: staff may
    assert ("confirmation", "sending", None) in messages(app, ok.get_json()["id"])


def test_staff_cannot_move_an_appointment_days_back_or_years_ahead(
    app, client, schedule, staff_token
):
    headers = staff_token("front_desk")
    booked = client.post(BOOK, headers=headers, json=staff_booking(schedule)).get_json()
    url = f"{BOOK}/{booked['id']}/reschedule"
    for start in ("2026-11-20T11:00:00-05:00", "2028-11-20T11:00:00-05:00"):
        response = client.post(url, headers=headers, json={"start": start})
        assert response.status_code == 422, response.get_json()
        assert "start" in response.get_json()["errors"]
    assert [k for k, _, _ in messages(app, booked["id"])].count("update") == 0


def test_the_calendar_form_says_it_next_to_the_time(app, client, login, schedule):
    login("front_desk")
    response = client.post(
        "/staff/calendar/new",
        data={
            "patient_id": schedule["patients"][0],
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][0],
            "start": "1926-11-25T09:00",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="start-error"' in page and "no more than 24 hours ago" in page
    assert 'value="1926-11-25T09:00"' in page  # what was typed is kept


def test_moves_not_sent_yet_make_one_update(app, client, schedule, staff_token, monkeypatch):
    """The worker behind: three moves, one "moved" message (it says where the visit is when
    it is sent); the earlier ones are cancelled, not sent three times over."""
    import clinic.celery_app

    monkeypatch.setattr(clinic.celery_app, "enqueue", lambda task, *args: None)  # not sent yet
    headers = staff_token("front_desk")
    booked = client.post(BOOK, headers=headers, json=staff_booking(schedule)).get_json()
    url = f"{BOOK}/{booked['id']}/reschedule"
    for start in (
        "2026-11-26T10:00:00-05:00",
        "2026-11-26T11:00:00-05:00",
        "2026-11-27T09:00:00-05:00",
    ):
        assert client.post(url, headers=headers, json={"start": start}).status_code == 200
    updates = [(s, e) for k, s, e in messages(app, booked["id"]) if k == "update"]
    assert updates == [
        ("cancelled", "a later move's update says it"),
        ("cancelled", "a later move's update says it"),
        ("sending", None),
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("start", 12345, "Must be a string"),
        ("start", "2026-11-26T09:00:07-05:00", "to the minute"),
        ("start", "2026-11-26T09:00:00.5-05:00", "to the minute"),
        ("provider_id", "1", "not quoted"),
        ("provider_id", True, "not quoted"),
        ("provider_id", None, "Required"),
    ],
)
def test_wrong_types_say_what_is_wrong(app, client, schedule, staff_token, field, value, message):
    body = staff_booking(schedule) | {field: value}
    response = client.post(BOOK, headers=staff_token("front_desk"), json=body)
    assert response.status_code == 422
    assert any(message in m for m in response.get_json()["errors"][field])
