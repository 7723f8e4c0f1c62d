"""The patient's booking page after the intake, and the manage link; DST-correct slot times."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.scheduling.models import Appointment
from tests.conftest import clock_at
from tests.scheduling.conftest import appointment_audit_events


def first_choice(page: str) -> str:
    return re.search(r'name="slot" value="([^"]+)"', page).group(1)


@pytest.fixture
def booked(app, client, schedule, make_request, booking_token):
    """A patient who came through the intake and booked the first offered time."""
    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    token = booking_token(patient_id, request_id)
    page = client.get(f"/book/{token}").get_data(as_text=True)
    choice = first_choice(page)
    response = client.post(f"/book/{token}", data={"slot": choice})
    assert response.status_code == 302 and "/appointments/manage/" in response.location
    return {
        "choice": choice,
        "token": token,
        "manage": response.location,
        "request_id": request_id,
        "patient_id": patient_id,
    }


def test_intake_thank_you_page_leads_to_booking(app, client, schedule):
    from tests.limits import ALL_SHOWN
    from tests.test_intake_form import walk

    walk(client, ALL_SHOWN)
    page = client.get("/intake/done").get_data(as_text=True)
    link = re.search(r'href="(/book/[^"]+)"', page).group(1)
    booking = client.get(link).get_data(as_text=True)
    assert "Choose a time for your consultation" in booking
    assert "Wednesday, November 25" in booking and "8:00 AM" in booking
    assert "Dr. Anika Patel" in booking and "Dr. Thomas Brennan" in booking


def test_booking_from_the_page(app, client, booked):
    page = client.get(booked["manage"]).get_data(as_text=True)
    assert "Wednesday, November 25, 2026 at 8:00 AM" in page
    assert "120 Main Street" in page and "Cancel my appointment" in page
    with app.app_context():
        [appointment] = db.session.scalars(select(Appointment)).all()
        assert appointment.source == "patient" and appointment.status == "booked"
        assert appointment.consultation_request_id == booked["request_id"]
        request = db.session.get(ConsultationRequest, booked["request_id"])
        assert request.status == "booked"
        assert request.status_changes[-1].reason == "The patient booked online."


def test_bad_links_and_bad_choices(app, client, schedule, booking_token):
    assert client.get("/book/not-a-token").status_code == 404
    assert "expired" in client.get("/book/not-a-token").get_data(as_text=True)
    assert client.get("/appointments/manage/forged").status_code == 404
    token = booking_token(schedule["patients"][0])
    provider = schedule["providers"][0]
    assert client.post(f"/book/{token}", data={"slot": f"{provider}|soon"}).status_code == 422
    assert client.post(f"/book/{token}", data={}).status_code == 422
    off_grid = f"{provider}|2026-11-25T08:05:00-05:00"
    response = client.post(f"/book/{token}", data={"slot": off_grid})
    assert response.status_code == 409
    assert "just taken" in response.get_data(as_text=True)


def test_the_booking_page_ends_at_the_horizon(app, client, schedule, booking_token):
    """Consultations are booked 90 days ahead (to Monday Feb 22, 2027 from the pinned Tuesday
    Nov 24): no later weeks are linked past it, and a week beyond it says so instead of
    "no times are free"."""
    token = booking_token(schedule["patients"][0])
    inside = client.get(f"/book/{token}?from=2027-02-10").get_data(as_text=True)
    assert 'href="?from=2027-02-17">Later dates' in inside
    last = client.get(f"/book/{token}?from=2027-02-17").get_data(as_text=True)
    # the horizon ends at the pinned time of day: 10:00 on the last day is the last slot
    assert (
        re.findall(r'name="slot" value="[^"|]+\|([^"]+)"', last)[-1] == "2027-02-22T10:00:00-05:00"
    )
    assert "Later dates" not in last
    beyond = client.get(f"/book/{token}?from=2027-03-01").get_data(as_text=True)
    assert "We book up to Monday, February 22, 2027. Choose an earlier date" in beyond
    assert "No times are free" not in beyond and "next week" not in beyond
    assert 'href="?from=2027-02-22">Earlier dates' in beyond


def test_a_taken_time_says_so(app, client, booked, schedule, booking_token):
    token = booking_token(schedule["patients"][5])
    taken = booked["choice"]
    response = client.post(f"/book/{token}", data={"slot": taken})
    assert response.status_code == 409
    assert "That time was just taken" in response.get_data(as_text=True)


def test_a_refused_time_shows_the_same_week_again(app, client, schedule, booking_token):
    """Old code: the page went back to the first week, and the patient paged forward again."""
    token = booking_token(schedule["patients"][5])
    first_week = client.get(f"/book/{token}").get_data(as_text=True)
    assert "Earlier dates" not in first_week  # nothing before today
    today = re.search(r'name="from" value="([0-9-]+)"', first_week).group(1)
    later_link = re.search(r'href="\?from=([0-9-]+)">Later dates', first_week).group(1)
    week = client.get(f"/book/{token}?from={later_link}").get_data(as_text=True)
    assert f'name="from" value="{later_link}"' in week
    assert re.search(rf'href="\?from={today}">Earlier dates', week)
    shown = re.findall(r'name="slot" value="([^"]+)"', week)
    taken = shown[3]
    provider, _, start = taken.partition("|")
    off_grid = f"{provider}|{start[:14]}05{start[16:]}"  # five minutes past a free time
    response = client.post(f"/book/{token}", data={"slot": off_grid, "from": later_link})
    assert response.status_code == 409
    again = response.get_data(as_text=True)
    assert "That time was just taken" in again
    assert re.findall(r'name="slot" value="([^"]+)"', again) == shown
    for nonsense in ("", "not-a-date", "1999-01-01", "9999-12-31"):
        response = client.post(f"/book/{token}", data={"slot": off_grid, "from": nonsense})
        assert response.status_code == 409  # a bad week falls back to a sane one, never a 500


@pytest.mark.parametrize(
    ("email", "consent", "confidential", "said"),
    [
        ("ruth@example.com", True, None, "emailing you a confirmation with a link to this page"),
        ("ruth@example.com", False, None, "Bookmark this page"),
        (None, True, None, "Bookmark this page"),
        ("ruth@example.com", True, "Post only, please", "Bookmark this page"),
    ],
)
def test_the_booked_page_says_where_its_link_is_kept(
    app, client, schedule, booking_token, monkeypatch, email, consent, confidential, said
):
    """Only a patient the confirmation will reach is told it is coming; others keep the page."""
    import clinic.celery_app
    from clinic.models import Patient

    # The page is what is tested: no send task (its staff task for a confidential-contact
    # patient would land in the next test's tables).
    monkeypatch.setattr(clinic.celery_app, "enqueue", lambda task, *args: None)

    with app.app_context():
        patient = db.session.get(Patient, schedule["patients"][0])
        patient.email, patient.consent_email = email, consent
        patient.confidential_comms_request = confidential
        db.session.commit()
    token = booking_token(schedule["patients"][0])
    choice = first_choice(client.get(f"/book/{token}").get_data(as_text=True))
    page = client.post(f"/book/{token}", data={"slot": choice}, follow_redirects=True)
    assert "Your appointment" in page.get_data(as_text=True)
    assert said in page.get_data(as_text=True)


def test_manage_link_cancels_only_on_post(app, client, booked):
    client.get(booked["manage"])
    client.get(booked["manage"] + "/cancel")  # GET does nothing (405)
    with app.app_context():
        assert db.session.scalars(select(Appointment)).one().status == "booked"
    response = client.post(booked["manage"] + "/cancel", data={"reason": "feeling_better"})
    assert response.status_code == 302
    page = client.get(booked["manage"]).get_data(as_text=True)
    assert "This appointment is cancelled" in page and "Cancel my appointment" not in page
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.status == "cancelled"
        assert appointment.cancel_reason == "Patient: I'm feeling better"
        assert appointment.cancelled_by_id is None


def test_a_second_cancel_says_cancelled_not_call_us(app, client, booked):
    """A double click, or staff cancelled first: the second POST waits on the row lock and
    finds the appointment cancelled. It is what the patient asked for, not an error."""
    for _ in range(2):
        response = client.post(booked["manage"] + "/cancel", data={"reason": "feeling_better"})
        assert response.status_code == 302 and response.location.endswith(booked["manage"])
    page = client.get(booked["manage"]).get_data(as_text=True)
    assert "This appointment is cancelled" in page
    assert "Please call us" not in page and "flash-error" not in page
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.status == "cancelled" and appointment.sequence == 1
        assert [e.action for e in appointment_audit_events()] == ["create", "update"]


def test_a_cancel_of_an_appointment_that_began_says_call_us(app, client, booked):
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        appointment.status = "arrived"
        db.session.commit()
    response = client.post(booked["manage"] + "/cancel", data={"reason": "feeling_better"})
    assert response.status_code == 302
    page = client.get(booked["manage"]).get_data(as_text=True)
    assert "can no longer be cancelled online. Please call us" in page
    with app.app_context():
        assert db.session.scalars(select(Appointment)).one().status == "arrived"


def test_reschedule_keeps_the_link_working(app, client, booked):
    page = client.get(booked["manage"] + "/reschedule").get_data(as_text=True)
    choices = re.findall(r'name="slot" value="([^"]+)"', page)
    # Its own time is not on offer (choosing it would move nothing); the same time with the
    # other provider is, as the appointment's own span counts as free to move within.
    assert booked["choice"] not in choices
    assert choices[0].endswith("2026-11-25T08:00:00-05:00")
    assert choices[0].split("|")[0] != booked["choice"].split("|")[0]
    later = next(c for c in choices if c.endswith("T14:00:00-05:00"))
    response = client.post(booked["manage"] + "/reschedule", data={"slot": later})
    assert response.status_code == 302
    page = client.get(booked["manage"]).get_data(as_text=True)  # the old link
    assert "2:00 PM" in page
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.sequence == 1 and appointment.status == "booked"


def test_a_move_to_where_the_appointment_is_changes_nothing(app, client, booked):
    """The same move posted twice (a double click; the second waited on the row lock, then
    found the appointment there): no new revision, no second "moved" message, no audit."""
    from clinic.notifications.models import Notification

    page = client.get(booked["manage"] + "/reschedule").get_data(as_text=True)
    later = next(c for c in re.findall(r'name="slot" value="([^"]+)"', page) if "T14:00" in c)
    for _ in range(2):
        response = client.post(booked["manage"] + "/reschedule", data={"slot": later})
        assert response.status_code == 302 and response.location.endswith(booked["manage"])
    page = client.get(booked["manage"] + "/reschedule").get_data(as_text=True)
    assert later not in page and booked["choice"] in page  # where it is now; where it was
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.sequence == 1 and appointment.start_at.hour == 19  # 2 PM in New York
        kinds = [n.kind for n in db.session.scalars(select(Notification))]
        assert kinds.count("update") == 1
        assert [e.action for e in appointment_audit_events()] == ["create", "update"]


def test_the_patients_own_changes_are_audited_as_the_patients(app, client, booked):

    page = client.get(booked["manage"] + "/reschedule").get_data(as_text=True)
    later = next(c for c in re.findall(r'name="slot" value="([^"]+)"', page) if "T14:00" in c)
    client.post(booked["manage"] + "/reschedule", data={"slot": later})
    client.post(booked["manage"] + "/cancel", data={"reason": "feeling_better"})
    with app.app_context():
        events = appointment_audit_events()
    assert [e.action for e in events] == ["create", "update", "update"]
    assert {(e.actor_id, e.actor_role, e.patient_id) for e in events} == {
        (None, "patient", booked["patient_id"])
    }
    assert events[2].reason == "booked -> cancelled: Patient: I'm feeling better"


def test_a_reschedule_of_an_appointment_cancelled_meanwhile_says_call_us(
    app, client, booked, monkeypatch
):
    """Staff cancel while the patient's reschedule page is open. The service re-reads the row
    under its lock and refuses; old code let that DomainError through as a 500."""
    from clinic.scheduling import services

    page = client.get(booked["manage"] + "/reschedule").get_data(as_text=True)
    later = next(c for c in re.findall(r'name="slot" value="([^"]+)"', page) if "T14:00" in c)
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        appointment.status = "cancelled"
        db.session.commit()
    # the page's own check ran before the cancel: only the service's re-check sees it
    monkeypatch.setattr(services, "patient_may_change", lambda appointment, now: True)
    response = client.post(booked["manage"] + "/reschedule", data={"slot": later})
    assert response.status_code == 302 and response.location.endswith(booked["manage"])
    monkeypatch.undo()
    page = client.get(booked["manage"]).get_data(as_text=True)
    assert "be changed online. Please call us" in page
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.status == "cancelled" and appointment.sequence == 0
        assert appointment.start_at.isoformat().startswith("2026-11-25T13:00")


@pytest.mark.parametrize(
    ("now", "start", "end", "expected"),
    [
        # March: Friday 09:00 is EST (-05:00), Monday 09:00 is EDT (-04:00)
        (
            datetime(2026, 3, 5, 12, tzinfo=UTC),
            "2026-03-06",
            "2026-03-09",
            {
                "2026-03-06": "-05:00",
                "2026-03-07": "-05:00",
                "2026-03-08": "-04:00",
                "2026-03-09": "-04:00",
            },
        ),
        # November: Friday EDT, Monday EST
        (
            datetime(2026, 10, 29, 12, tzinfo=UTC),
            "2026-10-30",
            "2026-11-02",
            {
                "2026-10-30": "-04:00",
                "2026-10-31": "-04:00",
                "2026-11-01": "-05:00",
                "2026-11-02": "-05:00",
            },
        ),
    ],
)
def test_slots_across_clock_changes(app, client, schedule, now, start, end, expected):
    app.config["CLINIC_NOW"] = now
    found = client.get(
        "/api/v1/slots",
        query_string={
            "appointment_type": "consultation",
            "start": start,
            "end": end,
            "provider_id": schedule["providers"][0],
        },
    ).get_json()
    by_day: dict[str, list[str]] = {}
    for slot in found:
        by_day.setdefault(slot["start"][:10], []).append(slot["start"])
    assert set(by_day) == set(expected)
    for day, offset in expected.items():
        times = by_day[day]
        assert times[0] == f"{day}T08:00:00{offset}"  # opening time stays 08:00 local
        assert times[-1] == f"{day}T16:15:00{offset}"
        assert all(t.endswith(offset) for t in times)
        assert len(times) == 28  # 08:00-11:15 and 13:00-16:15, every 15 minutes


def test_a_booking_link_books_once(app, client, booked, schedule):
    # the same link now leads to the booked appointment instead of a second booking
    response = client.get(f"/book/{booked['token']}")
    assert response.status_code == 302 and "/appointments/manage/" in response.location
    page = client.get(f"/book/{booked['token']}", follow_redirects=True).get_data(as_text=True)
    assert "You already have an appointment" in page
    api = client.post(
        "/api/v1/appointments",
        json={
            "booking_token": booked["token"],
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][1],
            "start": "2026-11-27T09:00:00-05:00",
        },
    )
    assert api.status_code == 409 and api.get_json()["error"] == "already_booked"
    assert "already has an appointment" in api.get_json()["detail"]
    # once cancelled, the request may book again
    client.post(booked["manage"] + "/cancel", data={"reason": "cannot_make_it"})
    assert client.get(f"/book/{booked['token']}").status_code == 200


def test_one_request_racing_itself_books_once(app, schedule, make_request, booking_token):
    """Two tabs submitting the same booking link at once: the database keeps one."""
    from tests.scheduling.test_booking_api import _race

    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    token = booking_token(patient_id, request_id)
    bodies = [
        {
            "booking_token": token,
            "appointment_type": "consultation",
            "provider_id": schedule["providers"][i % 2],
            "start": f"2026-11-2{5 + i // 2}T09:00:00-05:00",
        }
        for i in range(8)
    ]
    codes = _race(app, bodies)
    assert codes.count(201) == 1 and codes.count(409) == 7, codes


def test_the_link_acts_only_where_a_patient_may(app, client, booked, schedule, staff_token):
    from clinic.scheduling import links

    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        appointment_id = appointment.id
    headers = staff_token("front_desk")
    clock_at(app, appointment.start_at)  # the patient came in
    arrived = client.post(
        f"/api/v1/appointments/{appointment_id}/status", headers=headers, json={"status": "arrived"}
    )
    assert arrived.status_code == 200
    response = client.post(booked["manage"] + "/cancel", data={"reason": "other"})
    assert response.status_code == 302
    assert client.get(booked["manage"] + "/reschedule").status_code == 302
    with app.app_context():
        assert db.session.get(Appointment, appointment_id).status == "arrived"
    # a staff-booked procedure can't be moved or cancelled from its link
    procedure = client.post(
        "/api/v1/appointments",
        headers=headers,
        json={
            "patient_id": schedule["patients"][3],
            "appointment_type": "procedure",
            "provider_id": schedule["providers"][1],
            "start": "2026-12-01T09:00:00-05:00",
        },
    ).get_json()
    with app.test_request_context(), app.app_context():
        url = "/appointments/manage/" + links.manage_token(
            db.session.get(Appointment, procedure["id"])
        )
    assert "Cancel my appointment" not in client.get(url).get_data(as_text=True)
    client.post(url + "/cancel", data={"reason": "other"})
    client.post(
        url + "/reschedule", data={"slot": f"{schedule['providers'][0]}|2026-12-02T09:00:00-05:00"}
    )
    with app.app_context():
        row = db.session.get(Appointment, procedure["id"])
        assert row.status == "booked" and row.provider_id == schedule["providers"][1]


def test_the_same_booking_sent_again_leads_to_the_appointment(app, client, booked):
    """A retry of the booking POST (a lost answer, the back button) finds the request's own
    appointment in that slot: the patient is led to it, not told the time was taken."""
    response = client.post(f"/book/{booked['token']}", data={"slot": booked["choice"]})
    assert response.status_code == 302 and response.location.endswith(f"/book/{booked['token']}")
    page = client.get(response.location, follow_redirects=True).get_data(as_text=True)
    assert "You already have an appointment" in page and "just taken" not in page
    with app.app_context():
        assert len(db.session.scalars(select(Appointment)).all()) == 1


def test_the_same_booking_over_the_api_says_already_booked(app, client, booked):
    provider_id, start = booked["choice"].split("|")
    body = {
        "booking_token": booked["token"],
        "appointment_type": "consultation",
        "provider_id": int(provider_id),
        "start": start,
    }
    response = client.post("/api/v1/appointments", json=body)
    assert response.status_code == 409 and response.get_json()["error"] == "already_booked"
