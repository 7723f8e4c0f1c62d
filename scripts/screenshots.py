"""Save screenshots of the clinic's main pages (for the README).

    .venv/bin/python scripts/screenshots.py docs/screenshots

Starts the app itself on a throwaway SQLite database in a temporary directory, seeds the demo
clinic, serves it on a free local port and drives Debian's Chromium (``CHROMIUM_PATH``
overrides where it is) through the pages. Nothing outside the output directory is written;
no PostgreSQL, Redis or SMTP server is needed. The clock is pinned, so the pages show the
same dates every run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
PASSWORD = secrets.token_urlsafe(18)
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOBILE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
NURSE = "nurse@clinic.example"
FRONT_DESK = "frontdesk@clinic.example"
REQUEST_PATIENT = "Walter Nguyen"  # a demo request with an emergency red flag


def configure_environment(instance: Path) -> None:
    """Settings for a self-contained app; must run before anything imports clinic."""
    os.environ.update(
        {
            "CLINIC_ENV": "development",
            "CLINIC_INSTANCE_PATH": str(instance),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": f"sqlite:///{instance / 'clinic.sqlite3'}",
            "CELERY_BROKER_URL": "memory://localhost/",  # emails queue in memory, never sent
            "REDIS_URL": "",
            "RATELIMIT_ENABLED": "false",
        }
    )


def build_app():
    from flask_migrate import upgrade

    from clinic import create_app, demo
    from clinic.extensions import db

    app = create_app({"CLINIC_NOW": NOW})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        print(demo.seed(password=PASSWORD, now=NOW))
        db.session.commit()
        from clinic.notifications import dispatcher

        dispatcher.dispatch(NOW)  # as beat would: the back office shows no "not sent" banner
        app.config["DEMO_FOLLOW_UP"] = _follow_up_links()
        db.session.remove()
    return app


def _follow_up_links() -> dict:
    """The demo procedure's patient and a check-in link for its next timepoint."""
    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.followup.models import Timepoint
    from clinic.intake.models import ConsultationRequest
    from clinic.scheduling.models import Appointment
    from clinic.tokens import make_token

    timepoint = db.session.scalars(
        select(Timepoint).where(Timepoint.status == "scheduled").order_by(Timepoint.due_on)
    ).first()
    unbooked = db.session.scalars(  # a routine request the demo did not book: its link
        select(ConsultationRequest)
        .where(
            ConsultationRequest.triage == "routine",
            ~select(Appointment.id)
            .where(Appointment.consultation_request_id == ConsultationRequest.id)
            .exists(),
        )
        .order_by(ConsultationRequest.id)
    ).first()
    return {
        "booking": "/book/"
        + make_token("booking", {"request_id": unbooked.id, "patient_id": unbooked.patient_id}),
        "follow_up": f"/staff/patients/{timepoint.patient_id}/follow-up",
        "messages": f"/staff/patients/{timepoint.patient_id}/messages",
        "checkin": "/checkin/" + make_token("checkin", {"t": timepoint.id}),
        "date_of_birth": timepoint.patient.date_of_birth.strftime("%m/%d/%Y"),
    }


# -- driving the pages --------------------------------------------------------------------------


def choose(page, field_id: str, *labels: str) -> None:
    group = page.locator(f"#{field_id}-group")
    for label in labels:
        group.get_by_label(label, exact=True).check()


def fill(page, **values: str) -> None:
    for field_id, value in values.items():
        page.locator(f"#{field_id}").fill(value)


def save_and_continue(page, next_path: str) -> None:
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url(f"**{next_path}")


def answer_red_flags(page, **answers: str) -> None:
    for group in page.locator("fieldset").all():
        field_id = group.locator("input").first.get_attribute("name")
        choose(page, field_id, answers.get(field_id, "No"))


def log_in(page, email: str) -> None:
    page.goto("/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for()


def take_screenshots(browser, base_url: str, out: Path, links: dict) -> list[Path]:
    saved: list[Path] = []

    def new_page(viewport):
        context = browser.new_context(base_url=base_url, viewport=viewport, locale="en-US")
        context.set_default_timeout(15_000)
        return context.new_page()

    def shot(page, name: str, full_page: bool = True) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        saved.append(path)

    # The public home page.
    page = new_page(DESKTOP)
    page.goto("/")
    shot(page, "01-home")
    page.context.close()

    # The intake on a phone: step 1, then the symptoms step with problems to fix.
    page = new_page(MOBILE)
    page.goto("/intake")
    shot(page, "02-intake-step1-mobile")
    answer_red_flags(page)
    save_and_continue(page, "/intake/about-you")
    choose(page, "completed_by", "I am the patient")
    fill(page, first_name="Margaret", last_name="Okafor", date_of_birth="1952-04-17")
    choose(page, "preferred_contact", "Email")
    fill(page, email="margaret.okafor@example.com")
    choose(page, "voicemail_ok", "Yes")
    save_and_continue(page, "/intake/insurance")
    page.locator("#insurance_type").select_option("medicare_traditional")
    fill(page, payer_name="Medicare")
    save_and_continue(page, "/intake/symptoms")
    choose(page, "symptom_locations", "Low back", "Buttock")
    choose(page, "symptom_laterality", "Both")
    choose(page, "symptom_types", "Pain", "Heaviness or tiredness")
    choose(page, "symptom_duration", "1 to 2 years")
    choose(page, "symptom_onset", "Slowly, over time")
    for field_id in ("worse_standing", "worse_walking", "relief_sitting", "relief_flexion"):
        choose(page, field_id, "Yes")
    fill(page, max_standing_minutes="10", nprs_back_now="12", nprs_leg_now="7")
    fill(page, nprs_back_avg7d="6", nprs_leg_avg7d="7")
    page.get_by_role("button", name="Save and continue").click()
    page.locator("#error-summary").wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "03-symptoms-errors-mobile", full_page=False)
    page.context.close()

    # The back office as a nurse: the queue, then a request with a red flag.
    page = new_page(DESKTOP)
    log_in(page, NURSE)
    page.goto("/staff/requests")
    shot(page, "04-staff-queue-nurse")
    row = page.locator("table.queue tbody tr", has_text=REQUEST_PATIENT)
    row.get_by_role("link").click()
    page.get_by_role("heading", name="Candidacy signals").wait_for()
    request_path = page.url.removeprefix(base_url)
    shot(page, "05-request-nurse")
    # After a procedure: the outcome chart, the patient's messages, the overall message log.
    page.goto(links["follow_up"])
    shot(page, "10-follow-up-chart")
    page.goto(links["messages"])
    shot(page, "11-patient-messages")
    page.goto("/staff/tasks")
    shot(page, "12-staff-tasks")
    page.context.close()

    # The patient's check-in on a phone: date of birth, then the safety questions first.
    page = new_page(MOBILE)
    page.goto(links["checkin"])
    page.get_by_label("Your date of birth").fill(links["date_of_birth"])
    page.get_by_role("button").first.click()
    page.wait_for_load_state()
    shot(page, "13-checkin-safety-mobile")
    page.context.close()

    # The same request as the front desk: contact details, no clinical answers; then the
    # calendar the front desk runs.
    page = new_page(DESKTOP)
    log_in(page, FRONT_DESK)
    page.goto(request_path)
    page.get_by_text("A red-flag alert exists").wait_for()
    shot(page, "06-request-front-desk")
    page.goto("/staff/calendar/week")
    page.get_by_text("Move or cancel").first.click()  # one appointment's Move and Cancel forms
    shot(page, "08-calendar-week")
    page.goto("/staff/calendar/day")
    shot(page, "09-calendar-day", full_page=False)
    page.goto("/staff/waitlist")  # a cancelled consultation offered to who waits
    shot(page, "14-waitlist")
    page.goto("/staff/calendar/new")  # the booking form's patient list, narrowed by a search
    page.fill("#q", "Marsh")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("holds the patients matching").wait_for()
    page.select_option("#patient_id", index=1)  # the one match
    page.select_option("#appointment_type", "consultation")
    shot(page, "15-book-find-patient")
    page.context.close()

    # An emergency answer on step 1 (last, so the queue above shows only the demo clinic).
    page = new_page(MOBILE)
    page.goto("/intake")
    answer_red_flags(page, rf_bowel="Yes, and it is new (in the last days or weeks)")
    save_and_continue(page, "/intake/emergency")
    shot(page, "07-emergency-mobile")
    page.context.close()

    # A patient picks a consultation time on a phone from the link the intake gave, and sees
    # the appointment (last: it books one).
    page = new_page(MOBILE)
    page.goto(links["booking"])
    shot(page, "16-choose-time-mobile", full_page=False)
    page.locator("fieldset.slot-day").first.get_by_role("radio").first.check()
    page.get_by_role("button", name="Book this time").click()
    page.get_by_role("heading", name="Your appointment").wait_for()
    shot(page, "17-your-appointment-mobile")
    page.context.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="where to save the PNG files")
    args = parser.parse_args(argv)
    out = args.outdir.resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="clinic-screenshots-") as tmp:
        configure_environment(Path(tmp))
        from playwright.sync_api import sync_playwright
        from werkzeug.serving import make_server

        app = build_app()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    saved = take_screenshots(
                        browser,
                        f"http://127.0.0.1:{server.port}",
                        out,
                        app.config["DEMO_FOLLOW_UP"],
                    )
                finally:
                    browser.close()
        finally:
            server.shutdown()
            thread.join(timeout=10)
            with app.app_context():
                from clinic.extensions import db

                db.engine.dispose()
    for path in saved:
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
