"""The patient's intake in a real browser: the whole form on a phone, validation, emergencies."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.intake.fields import FORM_VERSION, RED_FLAGS
from clinic.intake.models import ConsultationRequest, IntakeDraft
from clinic.intake.rules import load_rules

MOBILE = {"width": 360, "height": 740}
RF_NEW = "Yes, and it is new (in the last days or weeks)"
RF_LONGSTANDING = "Yes, but it has not changed for a long time and a doctor has checked it"

# Every control the patient can see must be labelled: text-like inputs by a label[for=id],
# radios and checkboxes by their own label too.
UNLABELLED_CONTROLS_JS = """
() => {
  const controls = Array.from(document.querySelectorAll(
    "main input:not([type=hidden]), main select, main textarea"
  )).filter((el) => el.checkVisibility());
  const missing = controls.filter((el) => {
    if (!el.id) return true;
    const label = document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
    return !label || !label.textContent.trim();
  }).map((el) => el.id || el.name || el.outerHTML.slice(0, 80));
  return {count: controls.length, missing};
}
"""


# -- helpers ------------------------------------------------------------------------------------


def choose(page: Page, field_id: str, *labels: str) -> None:
    """Tick the radio or checkbox(es) of a question by their visible label texts."""
    group = page.locator(f"#{field_id}-group")
    for label in labels:
        group.get_by_label(label, exact=True).check()


def pick(page: Page, field_id: str, label: str) -> None:
    page.locator(f"#{field_id}-group").get_by_role("combobox").select_option(label=label)


def fill(page: Page, values: dict[str, str]) -> None:
    for field_id, value in values.items():
        page.locator(f"#{field_id}").fill(value)


def expect_step(page: Page, slug: str, title: str, number: int) -> None:
    # The first step is also the bare /intake, where the home page's link leads.
    path = r"/intake(/red-flags)?" if slug == "red-flags" else rf"/intake/{re.escape(slug)}"
    expect(page).to_have_url(re.compile(rf"{path}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.locator(".progress p")).to_have_text(f"Step {number} of 8")


def save_and_continue(page: Page) -> None:
    page.get_by_role("button", name="Save and continue").click()


def answer_red_flags(page: Page, **answers: str) -> None:
    """Answer every red-flag question: "No" unless given here (field id -> choice label)."""
    assert len(RED_FLAGS.fields) == 13
    for field in RED_FLAGS.fields:
        choose(page, field.id, answers.get(field.id, "No"))


def assert_controls_labelled(page: Page) -> None:
    result = page.evaluate(UNLABELLED_CONTROLS_JS)
    assert result["count"] > 0
    assert result["missing"] == [], f"controls without a label on {page.url}: {result['missing']}"


def assert_no_horizontal_scroll(page: Page, width: int = MOBILE["width"]) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width}px wide at a {width}px viewport"


def all_requests(app) -> list[ConsultationRequest]:
    with app.app_context():
        rows = db.session.scalars(select(ConsultationRequest)).all()
        db.session.expunge_all()
        db.session.remove()
        return rows


# -- 1. the whole form on a phone ---------------------------------------------------------------

PATIENT = {
    "first_name": "Margaret",
    "last_name": "Okafor",
    "date_of_birth": "1952-04-17",
    "email": "margaret.okafor@example.com",
    "city": "Springfield",
    "zip": "02139",
}


def test_patient_completes_the_whole_intake_on_a_phone(app, live_server, new_page):
    page = new_page(viewport=MOBILE)
    urls: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: urls.append(frame.url) if frame.parent_frame is None else None,
    )

    page.goto("/")
    page.get_by_role("link", name="Request a consultation").click()

    # 1. Urgent symptoms check: "No" to all 13 questions.
    expect_step(page, "red-flags", "Urgent symptoms check", 1)
    expect(page.locator("fieldset")).to_have_count(13)
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    answer_red_flags(page)
    save_and_continue(page)

    # 2. About you.
    expect_step(page, "about-you", "About you", 2)
    expect(page.locator("#proxy_name")).to_be_hidden()  # only for someone filling in for another
    choose(page, "completed_by", "I am the patient")
    expect(page.locator("#proxy_name")).to_be_hidden()
    fill(page, {k: PATIENT[k] for k in ("first_name", "last_name", "date_of_birth")})
    choose(page, "sex_at_birth", "Female")
    choose(page, "preferred_contact", "Email")
    fill(page, {"email": PATIENT["email"]})
    choose(page, "voicemail_ok", "Yes")
    fill(page, {"address_line1": "12 Elm Street", "city": PATIENT["city"], "zip": PATIENT["zip"]})
    pick(page, "state", "MA")
    pick(page, "preferred_language", "English")
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    save_and_continue(page)

    # 3. Insurance: the payer questions appear once a payer type is chosen.
    expect_step(page, "insurance", "Insurance", 3)
    expect(page.locator("#payer_name")).to_be_hidden()
    pick(page, "insurance_type", "Medicare (original)")
    expect(page.locator("#payer_name")).to_be_visible()
    fill(page, {"payer_name": "Medicare", "medicare_mbi": "1EG4-TE5-MK73"})
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    save_and_continue(page)

    # 4. Symptoms.
    expect_step(page, "symptoms", "Your symptoms", 4)
    assert_no_horizontal_scroll(page)
    choose(page, "symptom_locations", "Low back", "Buttock", "Thigh")
    choose(page, "symptom_laterality", "Both")
    choose(page, "symptom_types", "Pain", "Heaviness or tiredness")
    choose(page, "symptom_duration", "1 to 2 years")
    choose(page, "symptom_onset", "Slowly, over time")
    for field_id in ("worse_standing", "worse_walking", "relief_sitting", "relief_flexion"):
        choose(page, field_id, "Yes")
    choose(page, "relief_time", "2 to 10 minutes")
    fill(
        page,
        {
            "max_standing_minutes": "10",
            "max_walking_minutes": "5",
            "nprs_back_now": "6",
            "nprs_leg_now": "7",
            "nprs_back_avg7d": "6",
            "nprs_leg_avg7d": "7",
        },
    )
    choose(page, "goals", "Walking farther", "Standing longer")
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    save_and_continue(page)

    # 5. Treatments: the follow-up questions appear with a "Yes".
    expect_step(page, "treatments", "Treatments you have tried", 5)
    expect(page.locator("#tx_pt_weeks")).to_be_hidden()
    choose(page, "tx_physical_therapy", "Yes")
    fill(page, {"tx_pt_weeks": "8"})
    choose(page, "tx_home_exercise", "Yes")
    choose(page, "tx_meds", "Acetaminophen (Tylenol)", "Anti-inflammatories (ibuprofen, naproxen)")
    choose(page, "tx_opioid_current", "No")
    choose(page, "tx_esi", "Yes")
    fill(page, {"tx_esi_count": "2"})
    for field_id in ("tx_prior_mild", "tx_spacer"):
        choose(page, field_id, "No")
    # each surgery appears as the patient says how many there were
    expect(page.locator("#tx_surgery_count-group")).to_be_hidden()
    choose(page, "tx_lumbar_surgery", "Yes")
    choose(page, "tx_surgery_count", "Two")
    expect(page.locator("#tx_surgery_2_levels-group")).to_be_visible()
    expect(page.locator("#tx_surgery_3_levels-group")).to_be_hidden()
    choose(page, "tx_surgery_1_types", "Laminectomy or laminotomy", "Fusion")
    choose(page, "tx_surgery_1_levels", "L4-5")
    fill(page, {"tx_surgery_1_year": "2019"})
    choose(page, "tx_surgery_2_types", "Discectomy")
    choose(page, "tx_surgery_2_levels", "I don't know")
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    save_and_continue(page)

    # 6. Imaging.
    expect_step(page, "imaging", "Scans and imaging", 6)
    choose(page, "imaging_type", "MRI")
    fill(page, {"imaging_date": "2026-05"})
    choose(page, "mri_contraindication", "No")
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    save_and_continue(page)

    # 7. Health.
    expect_step(page, "health", "Your health", 7)
    expect(page.locator("#anticoag_stent_date-group")).to_be_hidden()
    choose(page, "anticoag_any", "Yes")
    choose(page, "anticoag_agents", "Clopidogrel (Plavix)")
    choose(page, "anticoag_reason", "Heart stent")
    expect(page.locator("#anticoag_stent_date-group")).to_be_visible()
    fill(page, {"anticoag_stent_date": "2026-02", "anticoag_prescriber": "Dr. Feld"})
    choose(page, "bleeding_disorder", "No")
    choose(page, "pregnancy_possible", "Does not apply to me")
    choose(page, "allergy_contrast", "No")
    choose(page, "allergy_local_anesthetic", "No")
    choose(page, "active_infection", "No")
    choose(page, "can_lie_prone", "Yes")
    fill(page, {"height_in": "64", "weight_lb": "150"})
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    save_and_continue(page)

    # 8. Consent and signature.
    expect_step(page, "consent", "Consent and signature", 8)
    for field_id in ("ack_not_emergency", "ack_npp", "attest_accurate"):
        page.locator(f"#{field_id}").check()
    choose(page, "consent_email", "Yes")
    choose(page, "consent_sms", "No")
    choose(page, "consent_qi_use", "Yes")
    fill(page, {"e_signature": "Margaret Okafor"})
    assert_controls_labelled(page)
    assert_no_horizontal_scroll(page)
    page.get_by_role("button", name="Send my request").click()

    # The thank-you page says what happens next.
    expect(page).to_have_url(re.compile(r"/intake/done$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, we have your request")
    expect(page.get_by_role("heading", name="What happens next")).to_be_visible()
    expect(page.get_by_text("A nurse reviews your answers")).to_be_visible()
    assert_no_horizontal_scroll(page)

    # Stored once, as canonical codes, with the versions that shaped it.
    rows = all_requests(app)
    assert len(rows) == 1
    req = rows[0]
    assert req.triage == "routine"
    assert req.complete is True
    assert req.form_version == FORM_VERSION
    assert req.red_flags == []
    answers = req.answers
    assert all(answers[f.id] == "no" for f in RED_FLAGS.fields)
    assert answers["completed_by"] == "self"
    assert answers["first_name"] == "Margaret"
    assert answers["date_of_birth"] == "1952-04-17"
    assert answers["preferred_contact"] == "email"
    assert answers["email"] == PATIENT["email"]
    assert answers["voicemail_ok"] is True
    assert answers["state"] == "MA"
    assert answers["preferred_language"] == "en"
    assert answers["insurance_type"] == "medicare_traditional"
    assert answers["medicare_mbi"] == "1EG4TE5MK73"
    assert answers["symptom_locations"] == ["low_back", "buttock", "thigh"]
    assert answers["symptom_types"] == ["pain", "heaviness_fatigue"]
    assert answers["symptom_duration"] == "1_2y"
    assert answers["symptom_onset"] == "gradual"
    assert answers["worse_walking"] is True
    assert answers["relief_time"] == "2_10min"
    assert answers["max_walking_minutes"] == 5
    assert answers["nprs_leg_now"] == 7
    assert answers["tx_meds"] == ["acetaminophen", "nsaid"]
    assert answers["tx_pt_weeks"] == 8
    assert answers["tx_opioid_current"] is False
    assert answers["tx_surgery_1_types"] == ["laminectomy_laminotomy", "fusion"]
    assert answers["tx_surgery_2_levels"] == ["unknown"] and "tx_surgery_3_types" not in answers
    assert answers["anticoag_stent_date"] == "2026-02"
    assert answers["imaging_type"] == "mri"
    assert answers["imaging_date"] == "2026-05"
    assert answers["pregnancy_possible"] == "not_applicable"
    assert answers["can_lie_prone"] == "yes"
    assert answers["consent_sms"] is False
    assert "proxy_name" not in answers  # hidden questions store nothing

    texts = load_rules("").consents["texts"]
    consents = req.consents
    assert consents["ack_npp"] == {"value": True, "text_version": texts["npp"]}
    assert consents["consent_email"] == {"value": True, "text_version": texts["email"]}
    assert consents["consent_sms"] == {"value": False, "text_version": texts["sms"]}
    assert consents["attest_accurate"] == {"value": True, "text_version": texts["attest"]}
    assert consents["_meta"]["version"].startswith("consent-texts-")

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IntakeDraft)) == 0
        db.session.remove()

    # Nothing the patient typed or chose ever appeared in a web address.
    paths = [urlsplit(u).path for u in urls]
    assert paths[0] == "/"
    assert "/intake/done" in paths
    assert {"/intake", "/intake/about-you", "/intake/health", "/intake/consent"} <= set(paths)
    typed = [
        *PATIENT.values(),
        "okafor",
        "1952",
        "medicare",
        "1_2y",
        "low_back",
        "email",
        "MK73",
    ]
    for url in urls:
        parts = urlsplit(url)
        assert parts.query == "" and parts.fragment == "", url
        assert parts.path == "/" or parts.path.startswith("/intake"), url
        for value in typed:
            assert value.lower() not in unquote(url).lower(), (value, url)


# -- 2. validation ------------------------------------------------------------------------------


def test_validation_errors_are_summarised_and_earlier_answers_kept(app, live_server, page):
    page.goto("/intake")
    answer_red_flags(page, rf_trauma=RF_LONGSTANDING)  # noted for the doctor, not urgent
    save_and_continue(page)

    expect_step(page, "about-you", "About you", 2)
    choose(page, "completed_by", "I am the patient")
    fill(page, {"last_name": "Okafor", "date_of_birth": "2031-05-01"})  # first name left empty
    choose(page, "preferred_contact", "Email")
    fill(page, {"email": "margaret.okafor@example.com"})
    choose(page, "voicemail_ok", "No")
    save_and_continue(page)

    # Still on the same step, with a focused summary linking to each problem.
    expect(page).to_have_url(re.compile(r"/intake/about-you$"))
    expect(page).to_have_title(re.compile(r"^Error: About you"))
    summary = page.locator("#error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading")).to_have_text("There are 2 problems with your answers")
    links = summary.get_by_role("link")
    expect(links).to_have_count(2)
    expect(links.nth(0)).to_have_attribute("href", "#first_name")
    expect(links.nth(0)).to_have_text("First name: This is required.")
    expect(links.nth(1)).to_have_attribute("href", "#date_of_birth")
    expect(links.nth(1)).to_have_text(re.compile(r"^Date of birth: .*can't be in the future"))

    # Each field shows its own message and is marked invalid; what was typed is kept.
    expect(page.locator("#first_name-error")).to_have_text(re.compile(r"This is required\."))
    expect(page.locator("#first_name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#first_name-group")).to_have_class(re.compile(r"\bfield-error\b"))
    expect(page.locator("#date_of_birth-error")).to_have_text(re.compile(r"can't be in the future"))
    expect(page.locator("#last_name-error")).to_have_count(0)
    expect(page.locator("#last_name")).to_have_value("Okafor")
    expect(page.locator("#email")).to_have_value("margaret.okafor@example.com")
    expect(page.locator("#completed_by-group").get_by_label("I am the patient")).to_be_checked()

    # A summary link leads to its field.
    links.nth(0).click()
    expect(page).to_have_url(re.compile(r"/intake/about-you#first_name$"))
    expect(page.locator("#first_name")).to_be_in_viewport()

    # Going back shows the first step's answers as given.
    page.get_by_role("link", name="Back").click()
    expect_step(page, "red-flags", "Urgent symptoms check", 1)
    expect(page.locator("#rf_trauma-group").get_by_label(RF_LONGSTANDING)).to_be_checked()
    expect(page.locator("#rf_trauma-group").get_by_label("No", exact=True)).not_to_be_checked()
    for field in RED_FLAGS.fields:
        if field.id != "rf_trauma":
            expect(
                page.locator(f"#{field.id}-group").get_by_label("No", exact=True)
            ).to_be_checked()

    # Nothing was submitted.
    assert all_requests(app) == []


# -- 3. an emergency answer ---------------------------------------------------------------------


def test_emergency_answer_shows_911_and_saves_a_partial_request(app, live_server, new_page):
    page = new_page(viewport=MOBILE)
    page.goto("/intake")
    answer_red_flags(page, rf_bowel=RF_NEW)
    save_and_continue(page)

    expect(page).to_have_url(re.compile(r"/intake/emergency$"))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Call 911 or go to the nearest emergency department now")
    expect(page.get_by_role("link", name="Call 911")).to_have_attribute("href", "tel:911")
    expect(page.get_by_role("button", name="I've read this")).to_be_visible()
    assert_no_horizontal_scroll(page)

    rows = all_requests(app)
    assert len(rows) == 1
    req = rows[0]
    assert req.triage == "emergency"
    assert req.complete is False
    assert req.patient_id is None
    assert [f["field"] for f in req.red_flags] == ["rf_bowel"]
    assert req.answers["rf_bowel"] == "new"

    page.get_by_role("button", name="Continue my request anyway").click()
    expect_step(page, "about-you", "About you", 2)
    expect(page.locator("#error-summary")).to_have_count(0)
    assert len(all_requests(app)) == 1  # continuing does not store a second request
