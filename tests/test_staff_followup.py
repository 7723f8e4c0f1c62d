"""Staff follow-up: recording a procedure, the outcome chart, tasks and red-flag pauses."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.followup import services as followup
from clinic.followup.models import AutomationPause, CheckIn, Procedure, StaffTask, Timepoint
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent
from clinic.scheduling import services as scheduling
from clinic.scheduling.models import Provider
from tests.conftest import FIXED_NOW, OWN_SCRIPTS, scripts_in

NEW = "/staff/procedures/new"
TASKS = "/staff/tasks"


@pytest.fixture
def patient_id(app, make_request):
    request_id = make_request(now=FIXED_NOW - timedelta(days=70))  # the intake: Sep 15
    with app.app_context():
        return db.session.get(ConsultationRequest, request_id).patient_id


def make_provider(app, name="Dr. Anika Patel", active=True) -> int:
    with app.app_context():
        provider = Provider(
            name=name, title="MD", feed_token=scheduling.new_feed_token(), active=active
        )
        db.session.add(provider)
        db.session.commit()
        return provider.id


@pytest.fixture
def provider_id(app):
    return make_provider(app)


def procedures(app) -> list[Procedure]:
    with app.app_context():
        return db.session.scalars(select(Procedure)).all()


def audit_events(app, **where) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).filter_by(**where)).all()


# -- recording a procedure ----------------------------------------------------------------------


def test_record_a_procedure_through_the_form(app, client, login, patient_id, provider_id):
    login("nurse")
    form = client.get(f"{NEW}?patient_id={patient_id}").get_data(as_text=True)
    assert '<label for="performed_on">Date of service</label>' in form
    assert f'<option selected value="{patient_id}">Okafor, Margaret' in form
    response = client.post(
        NEW,
        data={"patient_id": patient_id, "performed_on": "2026-11-20", "provider_id": provider_id},
    )
    assert response.status_code == 302
    assert response.location == f"/staff/patients/{patient_id}/follow-up"
    [procedure] = procedures(app)
    assert procedure.performed_on == date(2026, 11, 20)
    with app.app_context():
        codes = db.session.scalars(select(Timepoint.code).order_by(Timepoint.due_on)).all()
    assert codes == ["FU-D1", "FU-D10", "FU-W6", "FU-M3", "FU-M6", "FU-Y1", "FU-Y2"]
    page = client.get(response.location).get_data(as_text=True)
    assert "Procedure recorded: 7 follow-up points." in page
    assert "FU-W6" in page and "Jan 1, 2027" in page  # 6 weeks after Nov 20
    assert audit_events(app, action="create", resource_type="procedure")


def test_us_style_date_is_accepted(app, client, login, patient_id, provider_id):
    login("physician")
    data = {"patient_id": patient_id, "performed_on": "11/20/2026", "provider_id": provider_id}
    assert client.post(NEW, data=data).status_code == 302
    assert procedures(app)[0].performed_on == date(2026, 11, 20)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"performed_on": ""}, "performed_on", "Give the date of service."),
        ({"performed_on": "2026-11-25"}, "performed_on", "can&#39;t be in the future"),
        ({"performed_on": "2024-01-02"}, "performed_on", "more than a year ago"),
        ({"performed_on": "20/20/2026"}, "performed_on", "as YYYY-MM-DD"),
        ({"performed_on": "1" * 5000}, "performed_on", "as YYYY-MM-DD"),
        ({"performed_on": "0001-01-01"}, "performed_on", "as YYYY-MM-DD"),
        ({"patient_id": "999999"}, "patient_id", "No such patient."),
        ({"patient_id": "9" * 30}, "patient_id", "Choose a patient."),
        ({"patient_id": "x" * 5000}, "patient_id", "Choose a patient."),
        ({"patient_id": ""}, "patient_id", "Choose a patient."),
        ({"patient_id": "\u00b2"}, "patient_id", "Choose a patient."),  # isdigit(), not a number
        ({"provider_id": "\u0661\u0662"}, "provider_id", "Choose the provider who performed it."),
        ({"provider_id": "999999"}, "provider_id", "No such provider."),
        ({"provider_id": ""}, "provider_id", "Choose the provider who performed it."),
    ],
)
def test_bad_input_gets_a_field_message(
    app, client, login, patient_id, provider_id, change, field, message
):
    login("nurse")
    data = {"patient_id": patient_id, "performed_on": "2026-11-20", "provider_id": provider_id}
    response = client.post(NEW, data={**data, **change})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert message in text
    assert f'id="{field}-error"' in text and 'aria-invalid="true"' in text
    assert "Please check the form" in text
    assert procedures(app) == []


def test_inactive_provider_and_a_second_procedure_the_same_day(
    app, client, login, patient_id, provider_id
):
    login("nurse")
    retired = make_provider(app, "Dr. Retired", active=False)
    data = {"patient_id": patient_id, "performed_on": "2026-11-20", "provider_id": retired}
    assert "No such provider." in client.post(NEW, data=data).get_data(as_text=True)
    data["provider_id"] = provider_id
    assert client.post(NEW, data=data).status_code == 302
    again = client.post(NEW, data=data)
    assert again.status_code == 422 and "already recorded" in again.get_data(as_text=True)
    assert len(procedures(app)) == 1


def test_patient_search(client, login, patient_id, provider_id):
    """The name search is posted: a patient's name never goes into a URL or an access log."""
    login("nurse")
    page = client.get(NEW).get_data(as_text=True)
    search = '<form method="post" action="/staff/procedures/new" class="filters" role="search"'
    assert search in page
    found = client.post(NEW, data={"q": "okaf", "find": "1"})
    assert found.status_code == 200
    text = found.get_data(as_text=True)
    assert f'<option value="{patient_id}">Okafor, Margaret' in text
    assert '<input type="hidden" name="q" value="okaf">' in text  # kept for the record form
    assert "?q=" not in text and "Please check the form" not in text
    missing = client.post(NEW, data={"q": "Nobody", "find": "1"}).get_data(as_text=True)
    assert "Okafor" not in missing
    odd = client.post(NEW, data={"q": "%_\x00" + "a" * 5000, "find": "1"})
    assert odd.status_code == 200


def test_patient_list_is_audited(app, client, login, patient_id):
    """The page lists patients by name and birth date, so showing it is an audited access."""
    login("nurse")
    client.get(NEW)
    client.post(NEW, data={"q": "okaf", "find": "1"})
    with app.app_context():
        searches = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "search").order_by(AuditEvent.id)
        ).all()
    assert [e.reason for e in searches] == ["procedure form patient list"] * 2
    assert all(e.resource_type == "patient" for e in searches)


@pytest.mark.parametrize("role", ["front_desk", "billing", "admin"])
def test_only_clinicians_record_procedures(client, login, patient_id, provider_id, role):
    login(role)
    assert client.get(NEW).status_code == 403
    data = {"patient_id": patient_id, "performed_on": "2026-11-20", "provider_id": provider_id}
    assert client.post(NEW, data=data).status_code == 403


# -- the follow-up page and chart ---------------------------------------------------------------


@pytest.fixture
def with_checkins(app, patient_id, provider_id):
    """A procedure on Oct 1 with two answered check-ins (6 weeks without ODI, day 1 with)."""
    with app.app_context():
        from clinic.models import Patient

        procedure = followup.record_procedure(
            db.session.get(Patient, patient_id),
            db.session.get(Provider, provider_id),
            date(2026, 10, 1),
            actor=None,
            now=FIXED_NOW,
        )
        db.session.flush()
        points = {t.code: t for t in procedure.timepoints}
        for code, day, scores in (
            ("FU-D1", 2, {"nprs_back": 5, "nprs_leg": 4, "walk_minutes": 10, "odi_pct": 40}),
            ("FU-W6", 43, {"nprs_back": 2, "nprs_leg": 1, "walk_minutes": 45, "global_change": 6}),
        ):
            db.session.add(
                CheckIn(
                    timepoint_id=points[code].id,
                    patient_id=patient_id,
                    submitted_at=FIXED_NOW - timedelta(days=55 - day),
                    form_version="t",
                    scoring_version="t",
                    scores=scores,
                    responders={"nprs_back": True, "odi": None},
                    answers={"wound_clean_dry": "no"} if code == "FU-D1" else {},
                )
            )
        db.session.commit()
    return patient_id


def test_chart_renders_server_side(app, client, login, with_checkins):
    login("physician")
    response = client.get(f"/staff/patients/{with_checkins}/follow-up")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert scripts_in(text) == OWN_SCRIPTS  # the charts are drawn here, not by a script
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert text.count("<svg xmlns") == 3  # pain, ODI, walking
    assert "<polyline" in text and 'class="point"' in text
    # baseline 6/7 from the intake, then the two check-ins; the table says the same
    assert "Back pain (baseline 6)" in text and "Leg pain (baseline 7)" in text
    assert "Baseline (intake)" in text and "2 (\u22124)" in text and "45 (+40)" in text
    assert "Day 1 check-in" in text and "6 weeks" in text
    assert "nprs back" in text  # responder on back pain
    assert "<strong>Not clean and dry</strong>" in text  # the day-1 wound answer
    [event] = audit_events(app, action="view", resource_type="followup")
    assert event.patient_id == with_checkins


def test_chart_baseline_is_the_intake_before_the_procedure(
    app, client, login, with_checkins, make_request
):
    """A consultation request sent after the Oct 1 procedure does not move the chart's
    baseline: it stays the Sep 15 intake the check-ins were scored against."""
    later = make_request(now=FIXED_NOW - timedelta(days=1), nprs_back_now=3, nprs_leg_now=2)
    with app.app_context():
        assert db.session.get(ConsultationRequest, later).patient_id == with_checkins
    login("nurse")
    text = client.get(f"/staff/patients/{with_checkins}/follow-up").get_data(as_text=True)
    assert "Back pain (baseline 6)" in text and "Leg pain (baseline 7)" in text
    assert "the baseline from the intake of Sep 15, 2026" in text


def test_each_procedures_check_ins_are_compared_with_its_own_baseline(
    app, client, login, with_checkins, make_request, provider_id
):
    """A second procedure, after a new intake (back 3, leg 2), takes the chart's baseline; the
    first procedure's check-ins still show their change from the intake before them (6/7)."""
    from clinic.models import Patient

    make_request(now=FIXED_NOW - timedelta(days=6), nprs_back_now=3, nprs_leg_now=2)
    with app.app_context():
        followup.record_procedure(
            db.session.get(Patient, with_checkins),
            db.session.get(Provider, provider_id),
            (FIXED_NOW - timedelta(days=2)).date(),
            actor=None,
            now=FIXED_NOW,
        )
        db.session.commit()
    login("physician")
    text = client.get(f"/staff/patients/{with_checkins}/follow-up").get_data(as_text=True)
    assert "Back pain (baseline 3)" in text and "Leg pain (baseline 2)" in text
    assert "before the latest procedure" in text
    # the first procedure's 6-week check-in: back 2 against 6, not against 3
    assert "2 (\u22124)" in text and "2 (\u22121)" not in text
    table = text[text.index('<table class="outcomes">') :]
    first = table.index("Baseline (intake) before the procedure of Oct 1, 2026")
    second = table.index("Baseline (intake) before the procedure of ")
    assert first == second  # the older baseline comes first
    assert table.index("6 weeks") < table.rindex("Baseline (intake) before the procedure of ")


def test_follow_up_page_without_any_data(client, login, app):
    from clinic.models import Patient

    with app.app_context():
        patient = Patient(
            first_name="Ann",
            last_name="Empty",
            date_of_birth=date(1950, 1, 1),
            preferred_contact="email",
        )
        db.session.add(patient)
        db.session.commit()
        pid = patient.id
    login("nurse")
    text = client.get(f"/staff/patients/{pid}/follow-up").get_data(as_text=True)
    assert "No procedure recorded." in text and "no baseline" in text
    assert client.get("/staff/patients/999999/follow-up").status_code == 404


@pytest.mark.parametrize(("role", "code"), [("front_desk", 403), ("billing", 403), ("nurse", 200)])
def test_who_sees_outcomes(client, login, with_checkins, role, code):
    login(role)
    assert client.get(f"/staff/patients/{with_checkins}/follow-up").status_code == code


# -- tasks and pauses ---------------------------------------------------------------------------


@pytest.fixture
def task_and_pause(app, patient_id):
    with app.app_context():
        task = followup.add_task(
            patient_id, "followup_no_response", "Call the patient", cause=None,
            due_at=FIXED_NOW - timedelta(hours=1), now=FIXED_NOW,
        )  # fmt: skip
        pause = followup.pause_automation(patient_id, checkin_id=None, now=FIXED_NOW)
        db.session.commit()
        return {"task": task.id, "pause": pause.id, "patient": patient_id}


def test_tasks_page_lists_tasks_and_pauses(app, client, login, task_and_pause):
    login("front_desk")
    text = client.get(TASKS).get_data(as_text=True)
    assert "Call the patient" in text and "Okafor" in text and "Red flag alert" in text
    assert "Acknowledge and resume" not in text  # the front desk sees the flag, not the action
    assert '<label for="task-' in text
    assert audit_events(app, action="search", resource_type="staff_task")


def test_task_done_is_post_only_and_recorded(app, client, login, task_and_pause):
    login("front_desk")
    url = f"{TASKS}/{task_and_pause['task']}/done"
    assert client.get(url).status_code == 405
    assert client.post(url, data={"note": "x" * 1001}).status_code == 422
    response = client.post(url, data={"note": "Left a voicemail"}, follow_redirects=True)
    assert "Task done." in response.get_data(as_text=True)
    with app.app_context():
        task = db.session.get(StaffTask, task_and_pause["task"])
        assert task.done_at == FIXED_NOW and task.note == "Left a voicemail"
    assert "Call the patient" not in client.get(TASKS).get_data(as_text=True)
    again = client.post(url, follow_redirects=True).get_data(as_text=True)
    assert "already done" in again
    [event] = audit_events(app, action="update", resource_type="staff_task")
    assert event.patient_id == task_and_pause["patient"]


def test_acknowledge_a_pause_resumes_automation(app, client, login, task_and_pause):
    login("nurse")
    page = client.get(TASKS).get_data(as_text=True)
    assert "Acknowledge and resume" in page
    url = f"/staff/pauses/{task_and_pause['pause']}/acknowledge"
    assert client.get(url).status_code == 405
    assert 'name="seen" value="0"' in page
    response = client.post(url, data={"note": "Called; seen in clinic today", "seen": "0"})
    assert response.status_code == 302 and response.location == TASKS
    with app.app_context():
        pause = db.session.get(AutomationPause, task_and_pause["pause"])
        assert pause.acknowledged_at == FIXED_NOW and pause.note == "Called; seen in clinic today"
        assert followup.open_pause(task_and_pause["patient"]) is None
    assert audit_events(app, action="update", resource_type="automation_pause")
    again = client.post(url, data={"seen": "0"}, follow_redirects=True).get_data(as_text=True)
    assert "already acknowledged" in again


def test_acknowledge_from_the_follow_up_page(app, client, login, task_and_pause):
    login("physician")
    back = f"/staff/patients/{task_and_pause['patient']}/follow-up"
    assert "Routine messages are paused" in client.get(back).get_data(as_text=True)
    url = f"/staff/pauses/{task_and_pause['pause']}/acknowledge"
    response = client.post(url, data={"next": back, "seen": "0"})
    assert response.location == back
    assert "Routine messages are paused" not in client.get(back).get_data(as_text=True)


def test_a_red_flag_that_came_in_after_the_page_was_opened_is_seen_first(
    app, client, login, task_and_pause
):
    """Staff opened the tasks page with one red flag; another check-in raised one before they
    pressed "Acknowledge": messages must not resume on a red flag nobody has looked at."""

    def red_flag(minutes):
        with app.app_context():
            db.session.add(
                CheckIn(
                    patient_id=task_and_pause["patient"],
                    submitted_at=FIXED_NOW + timedelta(minutes=minutes),
                    form_version="t",
                    scoring_version="t",
                    triage="urgent",
                )
            )
            db.session.commit()

    red_flag(0)
    login("nurse")
    page = client.get(TASKS).get_data(as_text=True)
    assert 'name="seen" value="1"' in page
    red_flag(5)
    url = f"/staff/pauses/{task_and_pause['pause']}/acknowledge"
    refused = client.post(url, data={"seen": "1"}, follow_redirects=True).get_data(as_text=True)
    assert "Another red flag came in since that page was opened" in refused
    assert "2 red-flag check-ins since" in refused
    with app.app_context():
        assert followup.open_pause(task_and_pause["patient"]) is not None
    follow_up = f"/staff/patients/{task_and_pause['patient']}/follow-up"
    text = client.get(follow_up).get_data(as_text=True)
    assert "and 1 more since" in text and 'name="seen" value="2"' in text
    assert client.post(url, data={"seen": "2"}).status_code == 302
    with app.app_context():
        assert followup.open_pause(task_and_pause["patient"]) is None


def test_roles_on_tasks(client, login, task_and_pause):
    login("front_desk")
    assert client.post(f"/staff/pauses/{task_and_pause['pause']}/acknowledge").status_code == 403
    client.post("/staff/logout")
    login("billing", "billing2@clinic.test")
    assert client.get(TASKS).status_code == 403
    assert client.post(f"{TASKS}/{task_and_pause['task']}/done").status_code == 403


def test_nav_links_by_role(client, login):
    login("nurse")
    nav = client.get(TASKS).get_data(as_text=True)
    assert ">Messages<" in nav and ">Tasks<" in nav and ">Record procedure<" in nav
    client.post("/staff/logout")
    login("front_desk", "desk2@clinic.test")
    nav = client.get(TASKS).get_data(as_text=True)
    assert ">Messages<" in nav and ">Tasks<" in nav and ">Record procedure<" not in nav
