"""The staff alert about a red-flag intake is a message row (issue 4, line 1; issue 2, line 6).

Created in the request's transaction, one per request and level, with no patient on it,
addressed to STAFF_ALERT_EMAIL, sent at once by the send task with its fixed Message-ID, and
by a dispatcher pass when that enqueue was lost. The staff message log: test_staff_messages.py.
"""

from datetime import timedelta

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.intake.fields import SECTIONS
from clinic.intake.models import ConsultationRequest
from clinic.notifications.models import Notification
from tests.conftest import FIXED_NOW, example_values
from tests.limits import ALL_SHOWN
from tests.test_emails import assert_nothing_clinical, visible_text
from tests.test_intake_form import post_step, requests_in_db

URL = "/api/v1/consultation-requests"
ALERTS = "alerts@clinic.test"
ALERT_KINDS = ("intake_alert_emergency", "intake_alert_urgent")


@pytest.fixture
def enqueued(monkeypatch):
    """The ids handed to the send task after a commit, recorded instead of reaching a broker."""
    ids: list[int] = []
    monkeypatch.setattr("clinic.celery_app.enqueue", lambda task, *args: ids.append(args[0]))
    return ids


def alert_rows(app) -> list[Notification]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Notification)
                .where(Notification.kind.in_(ALERT_KINDS))
                .order_by(Notification.id)
            )
        )


def kinds(rows) -> list[tuple[int, str]]:
    return [(row.cause_id, row.kind) for row in rows]


# -- the row ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "kind"),
    [
        ({"rf_bowel": "new"}, "intake_alert_emergency"),
        ({"rf_night_pain": "worsening"}, "intake_alert_urgent"),
        ({}, None),
    ],
)
def test_a_red_flag_intake_stores_its_alert_row(app, client, enqueued, answers, kind):
    response = client.post(URL, json=example_values(**answers))
    assert response.status_code == 201
    request_id = response.get_json()["id"]
    rows = alert_rows(app)
    if kind is None:  # routine: no alert row, nothing handed to the send task
        assert rows == [] and enqueued == []
        return
    [row] = rows
    assert (row.kind, row.template, row.channel) == (kind, "staff_intake_alert", "email")
    assert (row.cause_type, row.cause_id, row.revision) == ("consultation_request", request_id, 0)
    assert row.patient_id is None  # addressed to staff: not one of the patient's messages
    assert (row.status, row.due_at, row.claimed_at) == ("sending", FIXED_NOW, FIXED_NOW)
    assert row.attempts == 0 and row.last_error is None and not row.routine
    assert row.message_id.startswith("<") and row.message_id.endswith(">")
    assert enqueued == [row.id]  # at once, after the commit


def test_the_alert_row_is_written_in_the_requests_transaction(app, enqueued, monkeypatch):
    """Both are in the one transaction: a commit that fails loses both and enqueues nothing."""
    from clinic.intake import schema
    from clinic.intake.submit import submit_values

    seen = {}

    def lost_commit():
        seen["requests"] = db.session.scalars(select(ConsultationRequest.id)).all()
        seen["alerts"] = [
            row.cause_id
            for row in db.session.scalars(
                select(Notification).where(Notification.kind.in_(ALERT_KINDS))
            )
        ]
        raise ConnectionError("the database went away")

    values, errors = schema.from_json(example_values(rf_bowel="new"))
    assert errors == {}
    with app.test_request_context():
        monkeypatch.setattr(db.session, "commit", lost_commit)
        with pytest.raises(ConnectionError):
            submit_values(values, source="api", client={})
        db.session.rollback()
    assert seen["requests"] and seen["alerts"] == seen["requests"]
    assert requests_in_db(app) == [] and alert_rows(app) == [] and enqueued == []


# -- once per request ---------------------------------------------------------------------------


def test_one_alert_for_the_partial_request_whatever_the_patient_does_next(app, client, enqueued):
    """Saved at the red-flag answer, then "continue anyway", the screen answered again (and
    changed), the whole form sent: one request, one alert."""
    flagged = dict(ALL_SHOWN, rf_urinary_retention="new")
    assert post_step(client, 0, flagged).location.endswith("/intake/emergency")
    [partial] = requests_in_db(app)
    assert partial.patient_id is None and not partial.complete
    assert kinds(alert_rows(app)) == [(partial.id, "intake_alert_emergency")]
    client.post("/intake/emergency", data={"continue_anyway": "1"})
    assert post_step(client, 0, flagged).status_code == 302  # the same answer again
    assert post_step(client, 0, ALL_SHOWN).status_code == 302  # changed to "no"
    for index in range(1, len(SECTIONS)):
        assert post_step(client, index, ALL_SHOWN).status_code == 302
    [req] = requests_in_db(app)
    assert req.id == partial.id and req.complete and req.patient_id is not None
    [alert] = alert_rows(app)
    assert (alert.cause_id, alert.kind) == (req.id, "intake_alert_emergency")
    assert alert.patient_id is None
    assert enqueued.count(alert.id) == 1


def test_an_urgent_request_that_turns_into_an_emergency_alerts_once_more(app, client, enqueued):
    """The urgent screen answer alerts; the saddle question re-asked on step 4 makes it an
    emergency, which alerts once more; finishing the form adds nothing."""
    urgent = dict(ALL_SHOWN, rf_night_pain="new")
    assert post_step(client, 0, urgent).location.endswith("/intake/urgent")
    [req] = requests_in_db(app)
    assert kinds(alert_rows(app)) == [(req.id, "intake_alert_urgent")]
    for index in range(1, 3):
        assert post_step(client, index, urgent).status_code == 302
    emergency = dict(urgent, rf_saddle_numbness_recheck="worsening")
    assert post_step(client, 3, emergency).location.endswith("/intake/emergency")
    client.post("/intake/emergency", data={"continue_anyway": "1"})
    for index in range(3, len(SECTIONS)):
        assert post_step(client, index, emergency).status_code == 302
    [req] = requests_in_db(app)
    assert req.complete and req.triage == "emergency"
    rows = alert_rows(app)
    assert kinds(rows) == [(req.id, "intake_alert_urgent"), (req.id, "intake_alert_emergency")]
    assert enqueued == [row.id for row in rows]


def test_a_retried_api_submit_makes_one_alert(app, client, enqueued):
    headers = {"Idempotency-Key": "alert-retry-1"}
    first = client.post(URL, json=example_values(rf_bowel="new"), headers=headers)
    again = client.post(URL, json=example_values(rf_bowel="new"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    [row] = alert_rows(app)
    assert row.cause_id == first.get_json()["id"] and enqueued == [row.id]


# -- through the real worker --------------------------------------------------------------------


def alert_mail(inbox) -> list:
    return [m for m in inbox.messages if m["To"] == ALERTS]


def wait_for_sent(app, row_id: int, timeout: float = 20.0) -> Notification:
    from tests.notifications.conftest import poll

    def sent():
        with app.app_context():
            row = db.session.get(Notification, row_id)
            return row if row.status == "sent" else None

    return poll(sent, timeout=timeout, message=f"alert {row_id} never marked sent")


def test_the_form_alert_reaches_staff_through_the_worker(app, client, celery_worker, inbox):
    """The partial request's alert at STAFF_ALERT_EMAIL, with the row's Message-ID, a link to
    the request and nothing of the patient; the rest of the form sends no second one."""
    assert post_step(client, 0, dict(ALL_SHOWN, rf_bowel="worsening")).status_code == 302
    [msg] = inbox.wait_for(1)
    [row] = alert_rows(app)
    assert msg["To"] == ALERTS and msg["Message-ID"] == row.message_id
    assert msg["Subject"] == "Urgent intake needs review - log in"
    text = visible_text(msg)
    assert f"http://clinic.test/staff/requests/{row.cause_id}" in text
    assert "no patient details" in text
    assert_nothing_clinical(text, "Margaret", "Okafor", "example.com", "1952", "emergency")
    row = wait_for_sent(app, row.id)
    assert row.attempts == 1 and row.sent_at is not None
    client.post("/intake/emergency", data={"continue_anyway": "1"})
    for index in range(1, len(SECTIONS)):
        assert post_step(client, index, ALL_SHOWN).status_code == 302
    assert len(alert_rows(app)) == 1
    assert [m["Message-ID"] for m in alert_mail(inbox)] == [row.message_id]


def test_an_alert_whose_enqueue_failed_is_sent_by_a_dispatcher_pass(
    app, client, celery_worker, inbox, monkeypatch, caplog, login
):
    """The broker refuses at the commit: the row stays claimed, a pass after the claim timeout
    sends it (same Message-ID); staff can then resend it, and it comes again, the same one."""
    from clinic.notifications import dispatcher
    from tests.notifications.conftest import after_claim_timeout

    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    send = app.extensions["celery"].tasks["notifications.send"]
    monkeypatch.setattr(send, "apply_async", refuse)
    response = client.post(URL, json=example_values(rf_night_pain="new"))
    assert response.status_code == 201
    monkeypatch.undo()  # the broker is back
    [row] = alert_rows(app)
    assert row.status == "sending" and row.kind == "intake_alert_urgent"
    assert f"could not enqueue notification {row.id}: ConnectionError" in caplog.text
    with app.app_context():
        # a pass before the claim timeout sends the acknowledgement, not the alert again
        assert dispatcher.dispatch(FIXED_NOW + timedelta(seconds=1)).claimed == 1
    [ack] = inbox.wait_for(1)
    assert ack["To"] != ALERTS
    with app.app_context():
        result = dispatcher.dispatch(after_claim_timeout(FIXED_NOW))
    assert (result.released, result.claimed) == (1, 1)
    inbox.wait_for(2)
    [msg] = alert_mail(inbox)
    assert msg["Message-ID"] == row.message_id
    assert msg["Subject"] == "Same-day callback needed - log in"
    wait_for_sent(app, row.id)
    # staff resend it from the message log: the same message again, at once
    login("front_desk")
    resend = client.post(f"/staff/messages/{row.id}/resend")
    assert resend.status_code == 302
    inbox.wait_for(3)
    assert [m["Message-ID"] for m in alert_mail(inbox)] == [row.message_id] * 2
