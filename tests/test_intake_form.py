"""The multi-step intake form over HTTP: steps, drafts, triage pages, every field's limits."""

import re

import pytest
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.intake.fields import SECTIONS
from clinic.intake.models import ConsultationRequest, IntakeDraft
from tests.limits import ALL_SHOWN, form_cases_for, to_form


def post_step(client, index, values):
    section = SECTIONS[index]
    return client.post(f"/intake/{section.slug}", data=to_form(section.fields, values))


STEPS = len(SECTIONS)


def walk(client, values, upto=STEPS):
    """Post steps 0..upto-1 with the given answers; every one must move on."""
    response = None
    for index in range(upto):
        response = post_step(client, index, values)
        assert response.status_code == 302, (SECTIONS[index].slug, response.data[-3000:])
    return response


def requests_in_db(app):
    with app.app_context():
        return db.session.scalars(select(ConsultationRequest)).all()


def test_home_leads_to_the_intake(client, app):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/intake"' in page


def test_first_step_is_the_red_flag_screen(client, app):
    page = client.get("/intake").get_data(as_text=True)
    assert "Step 1 of 8" in page and "Urgent symptoms check" in page
    assert 'name="rf_bowel"' in page
    assert "not monitored 24/7" in page


def test_later_steps_cannot_be_skipped_to(client, app):
    response = client.get("/intake/health")
    assert response.status_code == 302 and response.location.endswith("/intake/red-flags")
    response = client.post("/intake/consent", data={})
    assert response.status_code == 302


def test_whole_intake_creates_one_request(client, app, inbox):
    response = walk(client, ALL_SHOWN)
    assert response.location.endswith("/intake/done")
    page = client.get("/intake/done").get_data(as_text=True)
    assert "What happens next" in page
    # candidacy is for clinicians only: nothing on the patient's pages hints at it
    for word in ("candidate", "signal", "NC_PATTERN", "exclusion", "eligib"):
        assert word not in page
    [req] = requests_in_db(app)
    assert req.triage == "routine" and req.source == "proxy" and req.proxy_name == "Ann Okafor"
    assert req.answers["tx_surgery_1_levels"] == ["L5-S1"]
    assert req.answers["tx_surgery_2_types"] == ["laminectomy_laminotomy", "fusion"]
    assert set(req.answered_at) == {s.id for s in SECTIONS}
    assert req.consents["consent_email"]["text_version"] == "consent-email-2026-01"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IntakeDraft)) == 0


def test_answers_are_kept_server_side_not_in_urls_or_cookies(client, app):
    for index in range(3):
        response = post_step(client, index, ALL_SHOWN)
        assert response.status_code == 302 and "?" not in response.location
    cookie = client.get_cookie("clinic_session")
    assert cookie is not None
    # the cookie is signed, not encrypted (and may be compressed): read what it holds
    serializer = app.session_interface.get_signing_serializer(app)
    held = serializer.loads(cookie.value)
    assert "intake_draft" in held and set(held) <= {"intake_draft", "csrf_token", "_fresh"}
    assert isinstance(held["intake_draft"], str) and "Okafor" not in held["intake_draft"]
    with app.app_context():
        [draft] = db.session.scalars(select(IntakeDraft)).all()
        assert draft.answers["last_name"] == "Okafor" and draft.step == 3
    # going back shows what was saved
    page = client.get("/intake/about-you").get_data(as_text=True)
    assert 'value="Okafor"' in page


def test_errors_show_a_summary_and_a_message_on_each_field(client, app):
    walk(client, ALL_SHOWN, upto=1)
    values = dict(ALL_SHOWN, first_name="", date_of_birth="1950-02-30")
    response = post_step(client, 1, values)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'class="error-summary"' in page and "There are 2 problems" in page
    assert '<a href="#first_name">' in page and '<a href="#date_of_birth">' in page
    assert 'id="first_name-error"' in page and 'aria-invalid="true"' in page
    # what was typed stays on the page; earlier answers stay saved
    assert 'value="Okafor"' in page
    back = client.get("/intake/red-flags").get_data(as_text=True)
    assert re.search(r'value="no" checked', back)


def test_labels_are_tied_to_inputs(client, app):
    walk(client, ALL_SHOWN, upto=3)
    page = client.get("/intake/symptoms").get_data(as_text=True)
    ids = re.findall(r'<input[^>]*\bid="([^"]+)"', page)
    assert ids
    for input_id in ids:
        if input_id == "csrf_token":
            continue
        assert f'for="{input_id}"' in page, input_id


EMERGENCY_PAGE = "Call 911 or go to the nearest emergency department now."


def test_emergency_answer_blocks_saves_and_alerts(client, app):
    values = dict(ALL_SHOWN, rf_urinary_retention="new")
    response = post_step(client, 0, values)
    assert response.status_code == 302 and response.location.endswith("/intake/emergency")
    page = client.get("/intake/emergency").get_data(as_text=True)
    assert EMERGENCY_PAGE in page and "Continue my request anyway" in page
    [req] = requests_in_db(app)
    assert req.triage == "emergency" and not req.complete and req.patient_id is None
    # "continue anyway" completes the same request rather than making a second one
    response = client.post("/intake/emergency", data={"continue_anyway": "1"})
    assert response.location.endswith("/intake/about-you")
    for index in range(1, len(SECTIONS)):
        assert post_step(client, index, values).status_code == 302
    [req] = requests_in_db(app)
    assert req.complete and req.patient_id is not None and req.triage == "emergency"
    assert EMERGENCY_PAGE.split(" now")[0] in client.get("/intake/done").get_data(as_text=True)


def test_a_red_flag_stays_when_the_patient_goes_back_and_changes_the_answer(client, app):
    """Old code: the completed request overwrote the flag; staff saw a routine request."""
    from clinic.models import AuditEvent
    from clinic.staff.presenters import red_flag_rows

    flagged = dict(ALL_SHOWN, rf_urinary_retention="new")
    assert post_step(client, 0, flagged).location.endswith("/intake/emergency")
    client.post("/intake/emergency", data={"continue_anyway": "1"})
    response = post_step(client, 0, ALL_SHOWN)  # back to the screen: now "no"
    assert response.status_code == 302
    for index in range(1, len(SECTIONS)):
        assert post_step(client, index, ALL_SHOWN).status_code == 302
    [req] = requests_in_db(app)
    assert req.complete and req.answers["rf_urinary_retention"] == ALL_SHOWN["rf_urinary_retention"]
    assert (req.triage, req.triage_rank) == ("emergency", 0) and req.callback_due_at
    assert req.red_flags == [
        {
            "field": "rf_urinary_retention",
            "tier": "emergency",
            "answer": "new",
            "changed_to": ALL_SHOWN["rf_urinary_retention"],
        }
    ]
    with app.app_context():
        req = db.session.get(ConsultationRequest, req.id)
        [row] = red_flag_rows(req)
        assert "the patient later changed this to" in row.value
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource_id == str(req.id)).order_by(AuditEvent.id)
        ).all()
    assert [(e.action, e.actor_role) for e in events] == [
        ("create", "patient"),
        ("red_flag_raised", None),
        ("update", "patient"),
    ]


@pytest.fixture
def alerts(app, monkeypatch):
    """The staff alerts: (request id, kind) of each alert row, each handed to the send task
    once (ids recorded instead of reaching a broker)."""
    from clinic.notifications.models import STAFF_KINDS, Notification

    sent = []
    monkeypatch.setattr("clinic.celery_app.enqueue", lambda task, *args: sent.append(args[0]))

    def made():
        with app.app_context():
            rows = db.session.scalars(
                select(Notification)
                .where(Notification.kind.in_(STAFF_KINDS))
                .order_by(Notification.id)
            ).all()
        assert sent == [row.id for row in rows]
        return [(row.cause_id, row.kind) for row in rows]

    return made


def test_emergency_answer_blocks_at_once_with_another_question_blank(client, app, alerts):
    # an urgent answer waits for the step to be complete: the problem summary comes first
    urgent = to_form(SECTIONS[0].fields, dict(ALL_SHOWN, rf_fever="new"))
    urgent.pop("rf_night_pain")
    assert client.post("/intake/red-flags", data=urgent).status_code == 422
    assert requests_in_db(app) == [] and alerts() == []
    data = to_form(SECTIONS[0].fields, dict(ALL_SHOWN, rf_urinary_retention="new"))
    data.pop("rf_night_pain")
    response = client.post("/intake/red-flags", data=data)
    assert response.status_code == 302 and response.location.endswith("/intake/emergency")
    [req] = requests_in_db(app)
    assert req.triage == "emergency" and not req.complete
    assert req.answers["rf_urinary_retention"] == "new" and "rf_night_pain" not in req.answers
    assert alerts() == [(req.id, "intake_alert_emergency")]
    # "continue anyway" comes back to the unfinished step, which now asks for the blank
    response = client.post("/intake/emergency", data={"continue_anyway": "1"})
    assert response.location.endswith("/intake/red-flags")
    response = client.post("/intake/red-flags", data=data)
    assert response.status_code == 422
    assert 'id="rf_night_pain-error"' in response.get_data(as_text=True)
    assert len(requests_in_db(app)) == 1 and alerts() == [(req.id, "intake_alert_emergency")]


def test_saddle_re_ask_blocks_at_once_with_another_question_blank(client, app, alerts):
    walk(client, ALL_SHOWN, upto=3)
    values = dict(ALL_SHOWN, rf_saddle_numbness_recheck="worsening")
    values.pop("symptom_laterality")
    response = post_step(client, 3, values)
    assert response.location.endswith("/intake/emergency")
    [req] = requests_in_db(app)
    assert req.triage == "emergency" and alerts() == [(req.id, "intake_alert_emergency")]
    with app.app_context():
        assert db.session.scalars(select(IntakeDraft)).one().step == 3  # not passed yet


def test_emergency_read_ends_the_form(client, app):
    post_step(client, 0, dict(ALL_SHOWN, rf_bilateral_new="worsening"))
    page = client.post("/intake/emergency", data={"read": "1"}).get_data(as_text=True)
    assert "Call 911" in page
    # the draft key is gone: the form starts afresh
    assert client.get("/intake/about-you").location.endswith("/intake/red-flags")
    assert len(requests_in_db(app)) == 1


def test_urgent_answer_says_call_us_today(client, app):
    response = post_step(client, 0, dict(ALL_SHOWN, rf_night_pain="new"))
    assert response.location.endswith("/intake/urgent")
    page = client.get("/intake/urgent").get_data(as_text=True)
    assert "Please call our office today" in page and 'href="/intake/about-you"' in page
    # saved at once with its same-day callback, in case the patient goes no further
    [partial] = requests_in_db(app)
    assert partial.triage == "urgent" and not partial.complete and partial.callback_due_at
    walk_from = [
        post_step(client, i, ALL_SHOWN | {"rf_night_pain": "new"}) for i in range(1, len(SECTIONS))
    ]
    assert walk_from[-1].location.endswith("/intake/done")
    [req] = requests_in_db(app)
    assert req.triage == "urgent" and req.callback_due_at is not None
    assert "Please call us today" in client.get("/intake/done").get_data(as_text=True)


def test_genitals_symptom_re_asks_the_saddle_question(client, app):
    walk(client, ALL_SHOWN, upto=3)
    values = dict(ALL_SHOWN, symptom_locations=["genitals_perineum"])
    values.pop("rf_saddle_numbness_recheck")
    response = post_step(client, 3, values)
    assert response.status_code == 422
    assert 'id="rf_saddle_numbness_recheck-error"' in response.get_data(as_text=True)
    values["rf_saddle_numbness_recheck"] = "new"
    response = post_step(client, 3, values)
    assert response.location.endswith("/intake/emergency")
    [req] = requests_in_db(app)
    assert req.triage == "emergency"


def test_sudden_or_injury_onset_re_asks_the_trauma_question(client, app):
    walk(client, ALL_SHOWN, upto=3)
    values = dict(ALL_SHOWN, symptom_onset="after_injury")  # "no" to a recent fall on step 1
    values.pop("rf_trauma_recheck")
    response = post_step(client, 3, values)
    assert response.status_code == 422
    assert 'id="rf_trauma_recheck-error"' in response.get_data(as_text=True)
    values["rf_trauma_recheck"] = "new"
    response = post_step(client, 3, values)
    assert response.location.endswith("/intake/urgent")
    [req] = requests_in_db(app)
    assert req.triage == "urgent" and req.callback_due_at is not None


@pytest.mark.parametrize(
    ("index", "field_id", "value"),
    [
        (1, "referring_provider_npi", "²" * 10),  # int("²") raises
        (1, "zip", "٠٢١٣٩"),
        (1, "phone_mobile", "５５５２０１０１２３"),
        (3, "max_walking_minutes", "１５"),
    ],
)
def test_digits_from_other_scripts_get_the_fields_message(client, app, index, field_id, value):
    walk(client, ALL_SHOWN, upto=index)
    data = to_form(SECTIONS[index].fields, ALL_SHOWN) | {field_id: value}
    response = client.post(f"/intake/{SECTIONS[index].slug}", data=data)
    assert response.status_code == 422
    assert f'id="{field_id}-error"' in response.get_data(as_text=True)


def _step_cases(index):
    return [case for field in SECTIONS[index].fields for case in form_cases_for(field)]


@pytest.mark.parametrize("index", range(len(SECTIONS)), ids=[s.slug for s in SECTIONS])
def test_every_field_limit_in_the_form(client, app, index):
    walk(client, ALL_SHOWN, upto=index)
    section = SECTIONS[index]
    failures = []
    last = index == len(SECTIONS) - 1
    for field_id, value, ok in sorted(_step_cases(index), key=lambda case: case[2]):
        if ok and last:
            # sending the last step ends the draft: start a fresh intake for each accepted case
            client.delete_cookie("clinic_session")
            walk(client, ALL_SHOWN, upto=index)
        data = to_form(section.fields, ALL_SHOWN)
        data.pop(field_id, None)
        if value is not None:
            data[field_id] = value
        response = client.post(f"/intake/{section.slug}", data=data)
        page = response.get_data(as_text=True)
        if ok and response.status_code != 302:
            failures.append((field_id, value, "refused", response.status_code))
        if not ok:
            if response.status_code != 422 or f'id="{field_id}-error"' not in page:
                failures.append((field_id, str(value)[:30], "accepted", response.status_code))
            elif "There is a problem" not in page:
                failures.append((field_id, str(value)[:30], "more than one error", 422))
    assert failures == []
    assert requests_in_db(app) == [] or last


def test_csrf_is_required(app, database_url, smtp_server):
    from clinic import create_app
    from tests.conftest import dispose, make_test_config

    strict = create_app(make_test_config(database_url, smtp_server.port, WTF_CSRF_ENABLED=True))
    client = strict.test_client()
    response = client.post("/intake/red-flags", data=to_form(SECTIONS[0].fields, ALL_SHOWN))
    assert response.status_code == 400
    assert "This page was not saved yet" in response.get_data(as_text=True)
    page = client.get("/intake").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    data = to_form(SECTIONS[0].fields, ALL_SHOWN) | {"csrf_token": token}
    assert client.post("/intake/red-flags", data=data).status_code == 302
    dispose(strict)


def test_sending_the_last_step_twice_at_once_stores_one_request(app, client):
    import threading

    walk(client, ALL_SHOWN, upto=STEPS - 1)
    cookie = client.get_cookie("clinic_session").value
    section = SECTIONS[-1]
    data = to_form(section.fields, ALL_SHOWN)
    barrier = threading.Barrier(2)
    codes = []

    def send():
        twin = app.test_client()
        twin.set_cookie("clinic_session", cookie)
        barrier.wait()
        codes.append(twin.post(f"/intake/{section.slug}", data=data).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [302, 302]
    assert len(requests_in_db(app)) == 1


def test_a_late_rule_error_keeps_the_last_steps_answers(app, client):
    """If an earlier answer no longer fits, the patient goes back without losing this step."""
    walk(client, ALL_SHOWN, upto=STEPS - 1)
    with app.app_context():
        draft = db.session.scalars(select(IntakeDraft)).one()
        draft.answers = {k: v for k, v in draft.answers.items() if k != "first_name"}
        db.session.commit()
    response = post_step(client, STEPS - 1, dict(ALL_SHOWN, e_signature="Ann O. Okafor"))
    assert response.status_code == 422
    assert 'id="first_name-error"' in response.get_data(as_text=True)
    with app.app_context():
        draft = db.session.scalars(select(IntakeDraft)).one()
        assert draft.answers["e_signature"] == "Ann O. Okafor"


def test_a_draft_begun_on_the_old_form_is_sent_back_to_the_surgeries(app, client):
    """A draft lives a day: one that answered the old single set of surgery questions moves on
    (old code looked every kept answer up among the form's questions: a 500) and, at the end,
    goes back to the treatments step to describe each surgery."""
    treatments = next(i for i, s in enumerate(SECTIONS) if s.slug == "treatments")
    walk(client, ALL_SHOWN, upto=treatments + 1)
    with app.app_context():
        draft = db.session.scalars(select(IntakeDraft)).one()
        kept = {k: v for k, v in draft.answers.items() if not k.startswith("tx_surgery_")}
        draft.answers = kept | {"tx_surgery_types": ["fusion"], "tx_surgery_levels": ["L4-5"]}
        db.session.commit()
    for index in range(treatments + 1, STEPS - 1):
        assert post_step(client, index, ALL_SHOWN).status_code == 302
    response = post_step(client, STEPS - 1, ALL_SHOWN)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "<h1>Treatments you have tried</h1>" in page
    assert 'id="tx_surgery_count-error"' in page and 'id="tx_surgery_1_levels-error"' in page
    assert requests_in_db(app) == []
