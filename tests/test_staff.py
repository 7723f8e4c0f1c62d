"""The back office: login and sessions, roles, the queue, request pages, the audit log."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent, StaffSession, StaffUser, utcnow
from clinic.scheduling import waitlist
from tests.conftest import FIXED_NOW, STAFF_PASSWORD


def events(app, action=None):
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return db.session.scalars(query).all()


def test_login_page_and_wrong_password(app, client, make_staff):
    make_staff("nurse")
    assert client.get("/staff/").location.startswith("/staff/login")
    response = client.post("/staff/login", data={"email": "nurse@clinic.test", "password": "no"})
    assert response.status_code == 401
    assert "don&#39;t match" in response.get_data(as_text=True)
    response = client.post("/staff/login", data={"email": "nobody@clinic.test", "password": "x"})
    assert response.status_code == 401
    failed = events(app, "login_failed")
    assert len(failed) == 2 and failed[0].actor_id is not None and failed[1].actor_id is None
    assert all(e.outcome == "failure" for e in failed)


def test_login_goes_back_to_the_page_asked_for(app, client, make_staff):
    """Logged out (the 15 idle minutes), the desk opens the week it was on: after the login
    it is there, not on the queue. Only back-office paths of this site are followed."""
    from tests.conftest import STAFF_PASSWORD

    make_staff("front_desk")
    asked = client.get("/staff/calendar/week?date=2026-11-25")
    assert asked.status_code == 302 and "/staff/login?next=" in asked.location
    login = {"email": "front_desk@clinic.test", "password": STAFF_PASSWORD}
    response = client.post(asked.location, data=login)
    assert response.status_code == 302
    assert response.location == "/staff/calendar/week?date=2026-11-25"
    client.post("/staff/logout")
    elsewhere = client.post("/staff/login?next=https://evil.example/staff/", data=login)
    assert elsewhere.location == "/staff/"


def test_login_from_an_expired_page_says_why(app, database_url, smtp_server, make_staff):
    """A login page that outlived its session cookie: the form says it expired, not nothing."""
    from clinic import create_app
    from tests.conftest import dispose, make_test_config

    make_staff("nurse")
    strict = create_app(make_test_config(database_url, smtp_server.port, WTF_CSRF_ENABLED=True))
    try:
        c = strict.test_client()
        page = c.get("/staff/login").get_data(as_text=True)
        token = re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page)
        c.delete_cookie("clinic_session")
        data = {"email": "nurse@clinic.test", "password": STAFF_PASSWORD}
        response = c.post("/staff/login", data={**data, "csrf_token": token.group(1)})
        assert response.status_code == 400
        assert "This page had expired" in response.get_data(as_text=True)
        # the fresh form it came back with works
        fresh = re.search(
            r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"',
            response.get_data(as_text=True),
        )
        again = c.post("/staff/login", data={**data, "csrf_token": fresh.group(1)})
        assert again.status_code == 302
    finally:
        dispose(strict)


def test_passwords_are_argon2id_at_owasp_strength(app, make_staff):
    user_id = make_staff("nurse")
    with app.app_context():
        hashed = db.session.get(StaffUser, user_id).password_hash
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert STAFF_PASSWORD not in hashed


def test_logout_ends_the_session_on_the_server(app, client, login):
    login("nurse")
    stolen = client.get_cookie("clinic_session").value
    assert client.get("/staff/requests").status_code == 200
    client.post("/staff/logout")
    assert client.get("/staff/requests").status_code == 302
    # replaying the old cookie does not bring the session back
    client.set_cookie("clinic_session", stolen)
    response = client.get("/staff/requests")
    assert response.status_code == 302 and "/staff/login" in response.location
    with app.app_context():
        [session] = db.session.scalars(select(StaffSession)).all()
        assert session.end_reason == "logout"
    assert [e.action for e in events(app)][:2] == ["permission_change", "login"]
    assert "logout" in [e.action for e in events(app)]


def test_logout_from_an_expired_page_still_ends_the_session(
    app, database_url, smtp_server, make_staff
):
    """A logout whose CSRF token has expired (a page left open for hours) logs out all the same:
    the worst a forged logout can do is log someone out."""
    from clinic import create_app
    from tests.conftest import dispose, make_test_config

    make_staff("nurse")
    strict = create_app(make_test_config(database_url, smtp_server.port, WTF_CSRF_ENABLED=True))
    try:
        c = strict.test_client()
        page = c.get("/staff/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        data = {"email": "nurse@clinic.test", "password": STAFF_PASSWORD, "csrf_token": token}
        assert c.post("/staff/login", data=data).status_code == 302
        assert c.get("/staff/requests").status_code == 200
        response = c.post("/staff/logout", data={"csrf_token": "expired"})
        assert response.status_code == 302 and response.location.endswith("/staff/login")
        response = c.get("/staff/requests")
        assert response.status_code == 302 and "/staff/login" in response.location
        assert c.get("/staff/login").status_code == 200  # the form, not a trip to the queue
        with strict.app_context():
            [session] = db.session.scalars(select(StaffSession)).all()
            assert session.end_reason == "logout" and session.ended_at is not None
    finally:
        dispose(strict)
    assert "logout" in [e.action for e in events(app)]


def test_idle_logout_after_15_minutes(app, client, login):
    login("front_desk")
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=14)
    assert client.get("/staff/requests").status_code == 200  # activity renews the session
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=28)
    assert client.get("/staff/requests").status_code == 200
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=43, seconds=1)
    response = client.get("/staff/requests")
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "15 minutes" in page
    with app.app_context():
        [session] = db.session.scalars(select(StaffSession)).all()
        assert session.end_reason == "idle"
    # coming back in time does not revive it
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=1)
    assert client.get("/staff/requests").status_code == 302


def test_pages_reload_themselves_after_the_idle_limit(app, client, login):
    """An idle tab reloads itself into a session check: the server, not the page, decides the
    session is over (a GET never logs anyone out), and the check is not activity itself."""
    login("nurse")
    page = client.get("/staff/requests?status=all").get_data(as_text=True)
    check = "/staff/session-check?next=/staff/requests?status%3Dall"
    assert f'http-equiv="refresh" content="905;url={check}"' in page
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=15, seconds=5)
    response = client.get("/staff/session-check?next=/staff/requests")
    assert response.status_code == 302 and "/staff/login" in response.location
    assert "15 minutes" in client.get(response.location).get_data(as_text=True)


def test_two_idle_tabs_do_not_keep_each_other_logged_in(app, client, login):
    """Tab A loaded at 0, tab B at 1 minute, nobody touches either: A's automatic check at
    15:05 finds the session live (B was used at 1:00) and says so without renewing it; its
    next check, when B's 15 minutes are up, ends on the login page."""
    login("front_desk")
    client.get("/staff/requests")
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=1)
    client.get("/staff/calendar/week")
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=15, seconds=5)
    page = client.get("/staff/session-check?next=/staff/requests").get_data(as_text=True)
    assert "You are still logged in" in page
    assert 'href="/staff/requests"' in page
    assert 'content="60;url=/staff/session-check?next=/staff/requests"' in page
    with app.app_context():
        [session] = db.session.scalars(select(StaffSession)).all()
        assert session.last_seen_at == FIXED_NOW + timedelta(minutes=1)  # not renewed
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(minutes=16, seconds=5)
    response = client.get("/staff/session-check?next=/staff/requests")
    assert response.status_code == 302 and "/staff/login" in response.location


def test_session_check_goes_back_only_to_the_back_office(client, login):
    login("nurse")
    for target in ("https://evil.example/", "//evil.example/staff/", "/intake"):
        page = client.get("/staff/session-check", query_string={"next": target})
        assert 'href="/staff/"' in page.get_data(as_text=True)


def test_deactivated_user_is_logged_out(app, client, login):
    login("billing")
    with app.app_context():
        db.session.execute(text("UPDATE staff_user SET active = false"))
        db.session.commit()
    assert client.get("/staff/requests").status_code == 302


def test_a_session_ended_by_an_account_change_says_so(app, client, login, make_staff):
    login("nurse")
    with app.app_context():
        nurse_id = db.session.scalars(select(StaffUser.id)).one()
    admin = app.test_client()
    make_staff("admin")
    admin.post("/staff/login", data={"email": "admin@clinic.test", "password": STAFF_PASSWORD})
    admin.post(f"/staff/users/{nurse_id}", data={"role": "physician", "active": "y"})
    response = client.get("/staff/requests")
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "An administrator changed your account" in page and "15 minutes" not in page


def test_queue_sorted_by_urgency_then_age(app, client, login, make_request):
    old_routine = make_request(now=FIXED_NOW - timedelta(days=3))
    new_routine = make_request(now=FIXED_NOW - timedelta(hours=1))
    urgent = make_request(rf_fever="new", now=FIXED_NOW - timedelta(hours=2))
    emergency = make_request(rf_bowel="new", now=FIXED_NOW - timedelta(minutes=5))
    login("front_desk")
    page = client.get("/staff/requests").get_data(as_text=True)
    order = [
        page.index(f"Open request #{i}<") for i in (emergency, urgent, old_routine, new_routine)
    ]
    assert order == sorted(order)
    assert "Call by" in page and "Red flag alert" in page
    only_urgent = client.get("/staff/requests?triage=urgent").get_data(as_text=True)
    assert f"#{urgent}<" in only_urgent and f"#{emergency}<" not in only_urgent
    callbacks = client.get("/staff/requests?callback=pending").get_data(as_text=True)
    assert f"#{urgent}<" in callbacks and f"#{old_routine}<" not in callbacks


def test_nurse_sees_clinical_detail(app, client, login, make_request):
    request_id = make_request(
        rf_bowel="new",
        anticoag_any=True,
        anticoag_agents=["warfarin"],
        anticoag_reason=["afib"],
        anticoag_prescriber="Dr. Feld",
    )
    login("nurse")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert page.index("Red flags") < page.index("Candidacy signals") < page.index("Your symptoms")
    assert "Unable to control your bowels" in page
    assert "ANTICOAG" in page and "Warfarin" in page
    assert "MEDICARE_CED" in page  # coverage signals too
    assert "Acknowledge red flags" in page


def test_the_stent_date_is_shown_to_clinicians_only(app, client, login, make_request):
    request_id = make_request(
        anticoag_any=True,
        anticoag_agents=["clopidogrel"],
        anticoag_reason=["heart_stent"],
        anticoag_stent_date="2026-02",
        anticoag_prescriber="Dr. Feld",
    )
    login("nurse")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "<dt>When was the heart stent put in? (month and year)</dt><dd>2026-02</dd>" in page
    assert page.index("Your health") < page.index("When was the heart stent put in")
    client.post("/staff/logout")
    login("front_desk")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "heart stent" not in page and "2026-02" not in page


def test_front_desk_sees_that_a_red_flag_exists_but_no_clinical_answers(
    app, client, login, make_request
):
    request_id = make_request(
        rf_bowel="new",
        anticoag_any=True,
        anticoag_agents=["warfarin"],
        anticoag_reason=["afib"],
        anticoag_prescriber="Dr. Feld",
    )
    login("front_desk")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "A red-flag alert exists" in page
    for clinical in (
        "Unable to control your bowels",
        "Candidacy signals",
        "Your symptoms",
        "Warfarin",
        "ANTICOAG",
        "Acknowledge red flags",
        "Your health",
    ):
        assert clinical not in page
    assert "Margaret" in page and "Insurance" in page and "Change status" in page


def test_billing_sees_coverage_but_not_clinical(app, client, login, make_request):
    request_id = make_request()
    login("billing")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "MEDICARE_CED" in page and "NC_PATTERN" not in page and "Your symptoms" not in page
    assert "Change status" not in page
    assert (
        client.post(
            f"/staff/requests/{request_id}/status", data={"status": "in_review", "reason": "x"}
        ).status_code
        == 403
    )


def test_admin_manages_users_but_sees_no_patients(app, client, login, make_request):
    request_id = make_request()
    login("admin")
    assert client.get("/staff/").location.endswith("/staff/users")
    assert client.get("/staff/requests").status_code == 403
    assert client.get(f"/staff/requests/{request_id}").status_code == 403
    response = client.post(
        "/staff/users",
        data={
            "email": "new.nurse@clinic.test",
            "full_name": "New Nurse",
            "role": "nurse",
            "password": "short",
        },
    )
    assert response.status_code == 422 and "12" in response.get_data(as_text=True)
    response = client.post(
        "/staff/users",
        data={
            "email": "new.nurse@clinic.test",
            "full_name": "New Nurse",
            "role": "nurse",
            "password": STAFF_PASSWORD,
        },
    )
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalars(
            select(StaffUser).where(StaffUser.email == "new.nurse@clinic.test")
        ).one()
        user_id = user.id
    client.post(f"/staff/users/{user_id}", data={"role": "physician"})  # active unticked
    with app.app_context():
        user = db.session.get(StaffUser, user_id)
        assert user.role == "physician" and not user.active


# What a practice admin may open: users, the audit log, schedule settings (spec 4.4: "user/role
# management, template config. No PHI by default").
ADMIN_PAGES = {
    "staff.login",
    "staff.logout",
    "staff.home",
    "staff.session_check",
    "staff.users",
    "staff.edit_user",
    "staff.revoke_user_tokens",
    "staff.audit_log",
    "staff.providers",
    "staff.rotate_feed_token",
    "staff.schedule_settings",
    "staff.schedule_settings_add",
    "staff.schedule_row_delete",
    "staff.schedule_location",
    "staff.schedule_provider",
    "staff.schedule_type",
}


def test_admin_is_refused_every_other_back_office_page(app, client, login, make_request):
    """Every staff route not on the admin's short list is a 403, new routes included."""
    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    login("admin")
    refused = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("staff.") or rule.endpoint in ADMIN_PAGES:
            continue
        url = re.sub(r"<int:\w+>", str(patient_id), rule.rule).replace("<kind>", "hours")
        for method in sorted(rule.methods & {"GET", "POST"}):
            refused.append((method, url, client.open(url, method=method).status_code))
    assert {code for _, _, code in refused} == {403}, [r for r in refused if r[2] != 403]
    assert ("GET", f"/staff/patients/{patient_id}/messages", 403) in refused


def test_admin_pages_show_no_patient_data(app, client, login, make_request):
    """The pages an admin opens name no patient and give away no clinical answer, not even
    as the name of a red-flag question in the audit log."""
    from tests.conftest import example_values

    request_id = make_request(rf_bowel="new")
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    login("nurse")
    client.get(f"/staff/requests/{request_id}")
    client.post("/staff/logout")
    login("admin")
    values = example_values()
    secrets = ["rf_bowel", values["last_name"], values["email"], values["phone_mobile"]]
    for url in ("/staff/users", "/staff/audit", f"/staff/audit?patient_id={patient_id}"):
        page = client.get(url).get_data(as_text=True)
        assert not [s for s in secrets if s in page], url
        assert ">Messages<" not in page and ">Intake queue<" not in page
    report = client.get(f"/staff/audit?patient_id={patient_id}").get_data(as_text=True)
    assert "nurse@clinic.test (nurse)" in report
    assert f"consultation_request #{request_id}" in report


@pytest.mark.parametrize("role", ["front_desk", "nurse", "physician"])
def test_status_change_needs_a_reason_and_is_recorded(app, client, login, make_request, role):
    request_id = make_request()
    login(role)
    url = f"/staff/requests/{request_id}/status"
    response = client.post(url, data={"status": "in_review", "reason": ""})
    assert response.status_code == 422
    response = client.post(url, data={"status": "in_review", "reason": "x" * 1001})
    assert response.status_code == 422
    response = client.post(url, data={"status": "bogus", "reason": "why"})
    assert response.status_code == 422
    response = client.post(url, data={"status": "in_review", "reason": "Nurse reviewing"})
    assert response.status_code == 302
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "new &rarr; in review" in page and "Nurse reviewing" in page
    with app.app_context():
        req = db.session.get(ConsultationRequest, request_id)
        assert req.status == "in_review"
        assert [(c.from_status, c.to_status) for c in req.status_changes] == [("new", "in_review")]
    [change] = [e for e in events(app, "update") if e.changed_fields == ["status"]]
    assert change.reason == "Nurse reviewing" and change.actor_role == role


def test_acknowledge_and_callback(app, client, login, make_request):
    request_id = make_request(rf_fever="new")
    login("nurse")
    assert client.post(f"/staff/requests/{request_id}/acknowledge").status_code == 302
    assert client.post(f"/staff/requests/{request_id}/callback-done").status_code == 302
    with app.app_context():
        req = db.session.get(ConsultationRequest, request_id)
        assert req.red_flag_ack_at == FIXED_NOW and req.callback_done_at == FIXED_NOW
    assert len(events(app, "red_flag_ack")) == 1


def test_front_desk_cannot_acknowledge_red_flags(app, client, login, make_request):
    request_id = make_request(rf_fever="new")
    login("front_desk")
    assert client.post(f"/staff/requests/{request_id}/acknowledge").status_code == 403


def test_clinician_findings_update_signals(app, client, login, make_request):
    request_id = make_request()
    login("physician")
    url = f"/staff/requests/{request_id}/clinical"
    response = client.post(url, data={"clin_lf_thickness_mm": "16", "clin_mme": "abc"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "from 0.0 to 15.0" in body and "Enter a number" in body
    response = client.post(
        url,
        data={
            "clin_lf_thickness_mm": "3.2",
            "clin_target_levels": ["L4-5"],
            "clin_spondylolisthesis": "grade_II_plus",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        req = db.session.get(ConsultationRequest, request_id)
        signals = {s["code"]: s["level"] for s in req.candidacy_signals}
    assert signals["IMAGING_LF"] == "support" and signals["INSTABILITY"] == "likely_exclusion"


GRADES = ("clin_foraminal_severe", "clin_facet_severe", "clin_disc_protrusion")


def test_the_physician_grades_foraminal_facet_and_disc_findings(app, client, login, make_request):
    """Spec 1.7: clinician-only, none/mild/moderate/severe. Old code had no such entries."""
    request_id = make_request()
    url = f"/staff/requests/{request_id}/clinical"
    login("physician")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    for field_id in GRADES:
        assert f'<select id="{field_id}" name="{field_id}">' in page
    response = client.post(url, data={"clin_facet_severe": "very", "clin_disc_protrusion": "4"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.count("Choose from the list.") == 2
    response = client.post(
        url,
        data={
            "clin_foraminal_severe": "severe",
            "clin_facet_severe": "moderate",
            "clin_disc_protrusion": "",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        req = db.session.get(ConsultationRequest, request_id)
        entries, signals = req.clinician_entries, {s["code"] for s in req.candidacy_signals}
        assert req.rules_version.endswith("candidacy-signals-2026.11-v2")
    assert entries == {"clin_foraminal_severe": "severe", "clin_facet_severe": "moderate"}
    assert "FORAMINAL_SEVERE" in signals and "FACET_SEVERE" not in signals
    [event] = [e for e in events(app, "update") if e.actor_role == "physician"]
    assert event.changed_fields == ["clin_foraminal_severe", "clin_facet_severe"]
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert '<option value="severe" selected>' in page
    client.post("/staff/logout")

    # a nurse reads the physician's findings but cannot change them
    login("nurse")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "<dt>Foraminal stenosis</dt><dd>severe</dd>" in page
    assert '<select id="clin_foraminal_severe"' not in page and "FORAMINAL_SEVERE" in page
    client.post(url, data={"clin_foraminal_severe": "none"})
    with app.app_context():
        entries = db.session.get(ConsultationRequest, request_id).clinician_entries
    assert entries["clin_foraminal_severe"] == "severe"
    client.post("/staff/logout")
    login("front_desk")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "Foraminal" not in page and "FORAMINAL_SEVERE" not in page


def test_surgeries_one_by_one_and_answers_of_the_old_form_stay_readable(
    app, client, login, make_request
):
    request_id = make_request(
        tx_lumbar_surgery=True,
        tx_surgery_count="two",
        tx_surgery_1_types=["laminectomy_laminotomy", "fusion"],
        tx_surgery_1_levels=["L4-5"],
        tx_surgery_1_year=2019,
        tx_surgery_2_types=["discectomy"],
        tx_surgery_2_levels=["L5-S1"],
    )
    old_id = make_request()
    with app.app_context():  # a request stored by form v2: one set of types and levels
        old = db.session.get(ConsultationRequest, old_id)
        old.answers = {
            **old.answers,
            "tx_lumbar_surgery": True,
            "tx_surgery_types": ["fusion"],
            "tx_surgery_levels": ["L3-4", "L4-5"],
            "tx_surgery_year": 2012,
        }
        db.session.commit()
    login("physician")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert "<dt>Surgery 1: what kind?</dt><dd>Laminectomy or laminotomy, Fusion</dd>" in page
    assert "<dt>Surgery 1: what year?</dt><dd>2019</dd>" in page
    assert "<dt>Surgery 2: at which level(s)?</dt><dd>L5-S1</dd>" in page
    assert "Surgery 3" not in page
    page = client.get(f"/staff/requests/{old_id}").get_data(as_text=True)
    asked = page.index("<dt>Have you had lower-back surgery before?</dt><dd>Yes</dd>")
    assert asked < page.index("<dt>At which level(s)? (form v2)</dt><dd>L3-4, L4-5</dd>")
    assert "<dt>Year of the most recent surgery (form v2)</dt><dd>2012</dd>" in page
    # a target level set now is weighed against the old answers too
    url = f"/staff/requests/{old_id}/clinical"
    assert client.post(url, data={"clin_target_levels": ["L3-4"]}).status_code == 302
    with app.app_context():
        signals = {
            s["code"]: s for s in db.session.get(ConsultationRequest, old_id).candidacy_signals
        }
    assert signals["PRIOR_SURGERY_LEVEL"]["level"] == "likely_exclusion"


def test_every_view_of_a_request_is_audited_and_admin_sees_who(app, client, login, make_request):
    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    login("nurse")
    client.get(f"/staff/requests/{request_id}")
    client.get(f"/staff/requests/{request_id}")
    client.post("/staff/logout")
    login("admin")
    page = client.get(f"/staff/audit?patient_id={patient_id}").get_data(as_text=True)
    assert f"Who looked at patient #{patient_id}" in page
    assert page.count("nurse@clinic.test (nurse)") == 2
    assert "view" in page


def test_a_page_sent_back_with_errors_is_a_view_too(app, client, login, make_request):
    """A refused status change or clinical entry shows the whole request again: each showing
    is in the audit log, so nobody reads a request unrecorded by sending bad forms."""
    request_id = make_request()
    login("physician")
    status, clinical = (f"/staff/requests/{request_id}/{p}" for p in ("status", "clinical"))
    refused = [
        client.post(status, data={"status": "in_review", "reason": ""}),  # the form refuses
        client.post(status, data={"status": "declined", "reason": "Not a candidate"}),
        client.post(status, data={"status": "new", "reason": "Back"}),  # the service refuses
        client.post(clinical, data={"clin_mme": "abc"}),
    ]
    assert [r.status_code for r in refused] == [422, 302, 422, 422]
    assert all("Your symptoms" in r.get_data(as_text=True) for r in refused if r.status_code == 422)
    views = [e for e in events(app, "view") if e.resource_id == str(request_id)]
    assert len(views) == 3 and {e.actor_role for e in views} == {"physician"}


def test_who_looked_at_this_patient_pages_through_every_event(
    app, client, login, make_request, monkeypatch
):
    """Two years of follow-up make hundreds of events: the report pages, it never drops any."""
    from clinic import audit
    from clinic.staff import views

    monkeypatch.setattr(views, "AUDIT_PAGE", 3)
    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
        for minutes in range(7):  # oldest first; two share a timestamp
            audit.record(
                "view",
                resource_type="consultation_request",
                resource_id=request_id,
                patient_id=patient_id,
                reason=f"look {min(minutes, 5)}",
                now=FIXED_NOW + timedelta(minutes=min(minutes, 5)),
            )
        db.session.commit()
        ids = db.session.scalars(
            select(AuditEvent.id)
            .where(AuditEvent.patient_id == patient_id)
            .order_by(AuditEvent.ts.desc(), AuditEvent.id.desc())
        ).all()
    login("admin")
    seen, url = [], f"/staff/audit?patient_id={patient_id}"
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'data-event="(\d+)"', page)]
        more = re.search(r'href="(/staff/audit\?[^"]*before=\d+[^"]*)"', page)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert seen == ids and len(ids) >= 7


def test_who_looked_includes_views_from_before_the_patient_record(app, client, login):
    """An emergency answer saves the request before there is a patient; a nurse opening it
    then is an access to that patient once the form is finished, and the report shows it."""
    from zoneinfo import ZoneInfo

    from clinic.intake import schema, services
    from clinic.intake.rules import load_rules
    from tests.conftest import example_values

    tz, rules = ZoneInfo("America/New_York"), load_rules("")
    with app.app_context():
        partial = services.save_partial(
            {"rf_bowel": "new"}, source="patient", rules=rules, now=FIXED_NOW, tz=tz
        )
        db.session.commit()
        request_id = partial.id
    login("nurse")
    assert client.get(f"/staff/requests/{request_id}").status_code == 200
    with app.app_context():
        values, _ = schema.from_json(example_values(rf_bowel="new"))
        done = services.submit_request(
            values,
            source="patient",
            rules=rules,
            now=FIXED_NOW,
            tz=tz,
            existing=db.session.get(ConsultationRequest, request_id),
        )
        db.session.commit()
        patient_id = done.patient_id
    client.post("/staff/logout")
    login("admin")
    page = client.get(f"/staff/audit?patient_id={patient_id}").get_data(as_text=True)
    assert "nurse@clinic.test (nurse)" in page
    assert f"consultation_request #{request_id}" in page


def test_audit_log_is_append_only(app):
    from clinic import audit

    with app.app_context():
        audit.record("login", now=datetime.now(UTC))
        db.session.commit()
        for statement in (
            "UPDATE audit_event SET action = 'x'",
            "DELETE FROM audit_event",
            "TRUNCATE audit_event",
        ):
            with pytest.raises(Exception, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert db.session.scalar(text("SELECT count(*) FROM audit_event")) == 1


def test_cli_create_staff_and_api_token(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "create-staff",
            "Dr.Who@Clinic.test",
            "--role",
            "physician",
            "--password",
            STAFF_PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=[
            "create-staff",
            "dr.who@clinic.test",
            "--role",
            "physician",
            "--password",
            STAFF_PASSWORD,
        ]
    )
    assert result.exit_code == 2 and "exists" in result.output
    result = runner.invoke(
        args=["create-staff", "x@clinic.test", "--role", "janitor", "--password", STAFF_PASSWORD]
    )
    assert result.exit_code == 2
    result = runner.invoke(args=["create-api-token", "dr.who@clinic.test"])
    assert result.exit_code == 0
    token = result.output.strip()
    assert token.startswith("clin_") and len(token) > 30
    assert runner.invoke(args=["create-api-token", "nobody@clinic.test"]).exit_code == 2


def test_api_tokens_can_be_revoked(app, client, login, make_staff):
    """From the CLI and the users page; switching an account off revokes them for good."""
    from clinic.staff import services

    user_id = make_staff("physician", email="dr.api@clinic.test")

    def new_token():
        with app.app_context():
            token = services.create_api_token(db.session.get(StaffUser, user_id), now=FIXED_NOW)
            db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    def works(headers):
        return client.get("/api/v1/appointments", headers=headers).status_code != 401

    first = new_token()
    assert works(first)
    result = app.test_cli_runner().invoke(args=["revoke-api-tokens", "Dr.API@clinic.test"])
    assert result.exit_code == 0 and "Revoked 1 token" in result.output
    assert not works(first)
    assert app.test_cli_runner().invoke(args=["revoke-api-tokens", "x@y.test"]).exit_code == 2

    second = new_token()
    login("admin")
    page = client.get("/staff/users").get_data(as_text=True)
    assert "Revoke the API tokens of dr.api@clinic.test" in page
    response = client.post(f"/staff/users/{user_id}/revoke-tokens")
    assert response.status_code == 302 and not works(second)

    third = new_token()
    client.post(f"/staff/users/{user_id}", data={"role": "physician"})  # switched off
    client.post(f"/staff/users/{user_id}", data={"role": "physician", "active": "y"})
    assert not works(third)  # back on, but the old token stays dead
    revoked = [e for e in events(app, "delete") if e.resource_type == "api_token"]
    assert len(revoked) == 3


def test_only_admins_revoke_tokens(client, login, make_staff):
    user_id = make_staff("physician", email="dr.api@clinic.test")
    login("nurse")
    assert client.post(f"/staff/users/{user_id}/revoke-tokens").status_code == 403


def test_seed_demo(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "3 providers" in result.output and "7 staff users" in result.output
    with app.app_context():
        triages = [r.triage for r in db.session.scalars(select(ConsultationRequest))]
        booked = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.status == "booked")
        ).all()
        # a booked request got there by a recorded change with its reason, as in real use
        assert booked and all(
            r.status_changes and r.status_changes[-1].to_status == "booked" for r in booked
        )
        # the waitlist page has something to show: a cancelled consultation, offered to the
        # patient waiting for one and to the one waiting for a phone check-in
        waiting = waitlist.waiting_entries()
        (freed,) = waitlist.freed_slots(
            utcnow(), waiting, waitlist.booked_already(waiting, utcnow())
        )
        assert freed.freed.appointment_type.code == "consultation"
        assert [e.appointment_type.code for e in freed.matches] == [
            "consultation",
            "phone_check_in",
        ]
        assert freed.freed.appointment.patient_id not in {e.patient_id for e in freed.matches}
    assert {"emergency", "urgent", "routine"} <= set(triages)
    assert "not seeding" in runner.invoke(args=["seed-demo", "--if-empty"]).output


def test_an_api_call_without_a_token_says_how_to_authenticate(client):
    response = client.get("/api/v1/appointments")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_a_wrong_method_says_which_are_allowed(client):
    response = client.delete("/api/v1/appointments")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert response.get_json() == {"error": "method_not_allowed"}
