"""The staff message log: roles, filters, resend, and the dispatcher banner."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent
from clinic.notifications import services as notifications
from clinic.notifications.models import DispatcherRun, Notification
from tests.conftest import FIXED_NOW

LOG = "/staff/messages"
BANNER = "Messages are not being sent"


@pytest.fixture
def enqueued(monkeypatch):
    """The ids handed to the send task (after commit), without a broker."""
    ids: list[int] = []
    monkeypatch.setattr("clinic.celery_app.enqueue", lambda task, *args: ids.append(args[0]))
    return ids


@pytest.fixture
def patient_messages(app, make_request):
    """A patient with a failed reminder and a pending one; returns their ids."""
    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
        failed = notifications.create(
            patient_id=patient_id,
            kind="reminder_24h",
            cause_type="appointment",
            cause_id=424242,
            due_at=FIXED_NOW - timedelta(hours=3),
            now=FIXED_NOW - timedelta(days=2),
            routine=True,
            status="failed",
            last_error="550 5.1.1 mailbox unavailable",
        )
        failed.attempts = 3
        pending = notifications.create(
            patient_id=patient_id,
            kind="reminder_72h",
            cause_type="appointment",
            cause_id=424242,
            due_at=FIXED_NOW + timedelta(days=2),
            now=FIXED_NOW - timedelta(days=2),
            routine=True,
        )
        db.session.commit()
        return {"patient": patient_id, "failed": failed.id, "pending": pending.id}


def row(app, notification_id) -> Notification:
    with app.app_context():
        return db.session.get(Notification, notification_id)


def audit_events(app, **where):
    with app.app_context():
        query = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        return db.session.scalars(query).all()


@pytest.mark.parametrize("role", ["front_desk", "nurse", "physician"])
def test_roles_that_see_the_log(client, login, patient_messages, role):
    login(role)
    page = client.get(LOG)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "appointment_reminder" in text and "550 5.1.1 mailbox unavailable" in text
    assert "Okafor" in text
    assert client.get(f"/staff/patients/{patient_messages['patient']}/messages").status_code == 200


def test_billing_sees_no_messages(client, login, patient_messages):
    login("billing")
    assert client.get(LOG).status_code == 403
    assert client.get(f"/staff/patients/{patient_messages['patient']}/messages").status_code == 403
    nav = client.get("/staff/requests").get_data(as_text=True)
    assert ">Messages<" not in nav and ">Tasks<" not in nav


def test_admin_sees_no_messages(client, login, make_staff, patient_messages, enqueued):
    """The log names patients and what was sent to them: PHI, which a practice admin does not
    see by default (spec 4.4), on the page, in the nav or through the API."""
    from clinic.models import StaffUser
    from clinic.staff import services

    login("admin")
    patient_id = patient_messages["patient"]
    assert client.get(LOG).status_code == 403
    assert client.get(f"/staff/patients/{patient_id}/messages").status_code == 403
    assert client.post(f"{LOG}/{patient_messages['failed']}/resend").status_code == 403
    assert ">Messages<" not in client.get("/staff/users").get_data(as_text=True)
    assert enqueued == []
    with client.application.app_context():
        user = db.session.scalars(select(StaffUser).filter_by(role="admin")).one()
        token = services.create_api_token(user, now=FIXED_NOW)
        db.session.commit()
    listed = client.get(
        f"/api/v1/patients/{patient_id}/notifications",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert listed.status_code == 403


def test_failed_filter_and_columns(app, client, login, patient_messages):
    login("front_desk")
    text = client.get(LOG).get_data(as_text=True)
    assert "Show failed only" in text and "reminder 72h" in text
    failed = client.get(f"{LOG}?status=failed").get_data(as_text=True)
    assert "reminder 24h" in failed and "reminder 72h" not in failed
    assert f'Resend<span class="visually-hidden"> message #{patient_messages["failed"]}' in failed
    # an unknown status is ignored, not an error; a silly page number is clamped
    assert client.get(f"{LOG}?status=nonsense&page=99999999999").status_code == 200
    searches = audit_events(app, action="search", resource_type="notification")
    assert len(searches) == 3 and searches[1].reason == "message log (failed)"


def test_patient_log_is_audited_and_unknown_patient_is_404(app, client, login, patient_messages):
    login("nurse")
    patient_id = patient_messages["patient"]
    text = client.get(f"/staff/patients/{patient_id}/messages").get_data(as_text=True)
    assert "reminder 24h" in text and "reminder 72h" in text
    assert "Follow-up and outcomes" in text  # a nurse may follow the link to the outcomes
    [view] = audit_events(app, action="view", resource_type="notification")
    assert view.patient_id == patient_id
    assert client.get("/staff/patients/999999/messages").status_code == 404


def test_api_message_list_is_audited_as_a_view(app, client, make_staff, patient_messages):
    """A read of a patient's messages through the API is a `view` like the page's."""
    from clinic.models import StaffUser
    from clinic.staff import services

    user_id = make_staff("front_desk")
    with app.app_context():
        token = services.create_api_token(db.session.get(StaffUser, user_id), now=FIXED_NOW)
        db.session.commit()
    patient_id = patient_messages["patient"]
    response = client.get(
        f"/api/v1/patients/{patient_id}/notifications",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    [view] = audit_events(app, action="view", resource_type="notification")
    assert view.patient_id == patient_id and view.actor_id == user_id


def test_front_desk_gets_no_outcomes_link(client, login, patient_messages):
    login("front_desk")
    text = client.get(f"/staff/patients/{patient_messages['patient']}/messages").get_data(
        as_text=True
    )
    assert "Follow-up and outcomes" not in text


def test_resend_a_failed_message(app, client, login, patient_messages, enqueued):
    login("front_desk")
    notification_id = patient_messages["failed"]
    back = f"/staff/patients/{patient_messages['patient']}/messages"
    response = client.post(f"{LOG}/{notification_id}/resend", data={"next": back})
    assert response.status_code == 302 and response.location == back
    resent = row(app, notification_id)
    assert resent.status == "sending" and resent.attempts == 0 and resent.last_error is None
    assert resent.due_at == FIXED_NOW and resent.claimed_at == FIXED_NOW
    assert enqueued == [notification_id]  # handed to the send task once the commit was done
    [event] = audit_events(app, action="update", resource_type="notification")
    assert event.resource_id == str(notification_id) and "resend (failed)" in event.reason
    assert event.patient_id == patient_messages["patient"]
    assert "is being sent again" in client.get(back).get_data(as_text=True)


def test_resend_of_a_pending_message_is_refused_clearly(
    app, client, login, patient_messages, enqueued
):
    login("nurse")
    response = client.post(f"{LOG}/{patient_messages['pending']}/resend", follow_redirects=True)
    assert response.status_code == 200
    assert "Not resent: This message is still on its way." in response.get_data(as_text=True)
    assert row(app, patient_messages["pending"]).status == "pending"
    assert enqueued == []
    assert audit_events(app, action="update", resource_type="notification") == []


def test_resend_is_post_only_guarded_and_redirects_only_inside(
    app, client, login, patient_messages, enqueued
):
    login("front_desk")
    url = f"{LOG}/{patient_messages['failed']}/resend"
    assert client.get(url).status_code == 405
    response = client.post(url, data={"next": "https://evil.example/staff/"})
    assert response.status_code == 302 and response.location == LOG
    assert client.post(f"{LOG}/999999/resend").status_code == 404


def test_billing_cannot_resend(app, client, login, patient_messages, enqueued):
    login("billing")
    assert client.post(f"{LOG}/{patient_messages['failed']}/resend").status_code == 403
    assert row(app, patient_messages["failed"]).status == "failed"


def set_last_run(app, when) -> None:
    with app.app_context():
        db.session.merge(DispatcherRun(id=1, last_run_at=when, claimed=0, released=0))
        db.session.commit()


def test_banner_when_the_dispatcher_never_ran(client, login):
    login("front_desk")
    text = client.get(LOG).get_data(as_text=True)
    assert BANNER in text and "has not run at all yet" in text
    # on every back-office page, for every role
    client.post("/staff/logout")
    login("billing", "billing2@clinic.test")
    assert BANNER in client.get("/staff/requests").get_data(as_text=True)
    client.post("/staff/logout")
    login("admin")  # no patient data in it, so the admin sees it too
    assert BANNER in client.get("/staff/users").get_data(as_text=True)


def test_banner_when_stale_and_not_when_fresh(app, client, login):
    login("nurse")
    set_last_run(app, FIXED_NOW - timedelta(seconds=30))
    assert BANNER not in client.get(LOG).get_data(as_text=True)
    set_last_run(app, FIXED_NOW - timedelta(seconds=180))  # exactly three intervals: still fine
    assert BANNER not in client.get("/staff/requests").get_data(as_text=True)
    set_last_run(app, FIXED_NOW - timedelta(minutes=4))
    text = client.get("/staff/requests").get_data(as_text=True)
    assert BANNER in text and "the dispatcher has not run since Nov 24, 2026 9:56 AM" in text


def test_banner_follows_the_configured_interval(app, client, login):
    login("nurse")
    set_last_run(app, FIXED_NOW - timedelta(minutes=4))
    app.config["DISPATCH_INTERVAL_SECONDS"], old = 120, app.config["DISPATCH_INTERVAL_SECONDS"]
    try:
        assert BANNER not in client.get(LOG).get_data(as_text=True)
    finally:
        app.config["DISPATCH_INTERVAL_SECONDS"] = old


def test_no_banner_on_the_login_page(client):
    assert BANNER not in client.get("/staff/login").get_data(as_text=True)


# -- the staff alert about a red-flag intake: addressed to staff, not one of the patient's ------


@pytest.fixture
def intake_alert(app, client, enqueued):
    """An emergency intake through the API: its alert row (sent) and the request's patient."""
    from tests.conftest import example_values

    response = client.post("/api/v1/consultation-requests", json=example_values(rf_bowel="new"))
    assert response.status_code == 201
    body = response.get_json()
    with app.app_context():
        [alert] = db.session.scalars(
            select(Notification).where(Notification.kind == "intake_alert_emergency")
        ).all()
        alert.status, alert.attempts, alert.sent_at = "sent", 1, FIXED_NOW
        db.session.commit()
        enqueued.clear()
        return {"id": alert.id, "request": body["id"], "patient": body["patient_id"]}


def message_row(text: str, notification_id: int) -> str:
    """The log's table row of one message."""
    [found] = re.findall(
        rf"<tr class=\"message-\w+\">\s*<td>{notification_id}</td>.*?</tr>", text, re.S
    )
    return found


def test_an_intake_alert_is_in_the_log_as_a_message_to_staff(client, login, intake_alert):
    login("front_desk")
    text = client.get(LOG).get_data(as_text=True)
    found = message_row(text, intake_alert["id"])
    assert "intake alert emergency" in found and "staff_intake_alert" in found
    assert "Clinic staff" in found and "Sent" in found
    assert f'href="/staff/requests/{intake_alert["request"]}"' in found
    assert "Okafor" not in found and "Margaret" not in found
    assert f'Resend<span class="visually-hidden"> message #{intake_alert["id"]}' in found


def test_the_intake_alert_is_not_in_the_patients_own_messages(
    app, client, login, make_staff, intake_alert
):
    """The patient's list (page and API) holds their acknowledgement, not the staff's alert."""
    from clinic.models import StaffUser
    from clinic.staff import services

    login("nurse")
    patient_id = intake_alert["patient"]
    text = client.get(f"/staff/patients/{patient_id}/messages").get_data(as_text=True)
    assert "intake acknowledgement" in text and "intake alert" not in text
    user_id = make_staff("front_desk")
    with app.app_context():
        token = services.create_api_token(db.session.get(StaffUser, user_id), now=FIXED_NOW)
        db.session.commit()
    listed = client.get(
        f"/api/v1/patients/{patient_id}/notifications",
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()
    assert [m["kind"] for m in listed] == ["intake_acknowledgement"]


def test_resend_an_intake_alert(app, client, login, intake_alert, enqueued):
    login("front_desk")
    notification_id = intake_alert["id"]
    before = row(app, notification_id).message_id
    response = client.post(f"{LOG}/{notification_id}/resend", data={"next": LOG})
    assert response.status_code == 302 and response.location == LOG
    resent = row(app, notification_id)
    assert (resent.status, resent.attempts, resent.claimed_at) == ("sending", 0, FIXED_NOW)
    assert resent.message_id == before and resent.patient_id is None
    assert enqueued == [notification_id]
    [event] = audit_events(app, action="update", resource_type="notification")
    assert event.resource_id == str(notification_id) and "resend (sent)" in event.reason
    assert "is being sent again" in client.get(LOG).get_data(as_text=True)
