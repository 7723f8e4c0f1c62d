"""A patient's-eye review of the public pages: what is shown back, said and linked."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from clinic.intake.fields import SECTIONS
from tests.conftest import dispose, make_test_config
from tests.limits import ALL_SHOWN, to_form
from tests.test_intake_form import post_step, walk


def _input(page: str, field_id: str) -> str:
    return re.search(rf'<input[^>]*\bid="{field_id}"[^>]*>', page).group(0)


def test_a_typo_is_shown_back_as_typed(app, client):
    """A box the server could not read keeps what the patient typed, next to its message."""
    walk(client, ALL_SHOWN, upto=1)
    data = to_form(SECTIONS[1].fields, ALL_SHOWN) | {
        "date_of_birth": "13/45/1950",
        "email": "ann.okafor(at)example.com",
    }
    response = client.post(f"/intake/{SECTIONS[1].slug}", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="date_of_birth-error"' in page and 'id="email-error"' in page
    assert 'value="13/45/1950"' in _input(page, "date_of_birth")
    assert 'value="ann.okafor(at)example.com"' in _input(page, "email")
    walk(client, ALL_SHOWN, upto=3)
    data = to_form(SECTIONS[3].fields, ALL_SHOWN) | {"max_walking_minutes": "twenty"}
    page = client.post(f"/intake/{SECTIONS[3].slug}", data=data).get_data(as_text=True)
    assert 'value="twenty"' in _input(page, "max_walking_minutes")
    # the step's other answers are shown as sent, too
    page = post_step(client, 1, ALL_SHOWN | {"first_name": "Zoë", "email": "x"})
    assert 'value="Zoë"' in _input(page.get_data(as_text=True), "first_name")


@pytest.fixture
def strict(database_url, smtp_server):
    """The app with CSRF checks on, as in production."""
    from clinic import create_app

    application = create_app(
        make_test_config(database_url, smtp_server.port, WTF_CSRF_ENABLED=True)
    )
    yield application
    dispose(application)


def _token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def test_an_expired_page_keeps_what_was_typed(app, strict):
    """A step left open past the token's lifetime: nothing saved, nothing lost, clear words."""
    client = strict.test_client()
    page = client.get("/intake").get_data(as_text=True)
    data = to_form(SECTIONS[0].fields, ALL_SHOWN) | {"csrf_token": _token(page)}
    assert client.post("/intake/red-flags", data=data).status_code == 302
    sent = to_form(SECTIONS[1].fields, ALL_SHOWN) | {
        "first_name": "Zoë",
        "csrf_token": "expired-token",
    }
    response = client.post("/intake/about-you", data=sent)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This page was not saved yet" in page and "open for a long time" in page
    assert 'value="Zoë"' in _input(page, "first_name")
    assert _token(page) != "expired-token"
    assert "Step 2 of 8" in page
    with app.app_context():
        from clinic.extensions import db
        from clinic.intake.models import IntakeDraft

        assert db.session.scalars(select(IntakeDraft)).one().answers.get("first_name") is None
    # sent again with the page's fresh token, it is saved
    again = sent | {"csrf_token": _token(page)}
    response = client.post("/intake/about-you", data=again)
    assert response.status_code == 302 and response.location.endswith("/intake/insurance")


# -- booking and the manage link --------------------------------------------------------------


@pytest.fixture
def clinic_schedule(app):
    from tests.scheduling.conftest import build_schedule

    with app.app_context():
        return build_schedule()


@pytest.fixture
def book_url(app, clinic_schedule, make_request):
    """The booking page an intake's thank-you page links to."""
    from clinic.extensions import db
    from clinic.intake.models import ConsultationRequest
    from clinic.tokens import make_token

    request_id = make_request()
    with app.test_request_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
        return (
            f"/book/{make_token('booking', {'request_id': request_id, 'patient_id': patient_id})}"
        )


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_times_name_the_clinics_zone(app, client, book_url):
    """Booked and shown in clinic time, and the page says which zone that is (as emails do)."""
    page = client.get(book_url).get_data(as_text=True)
    assert "local time (New York time)" in page
    assert "Wednesday, November 25 (times in EST)" in _text(page)
    choice = re.search(r'name="slot" value="([^"]+)"', page).group(1)
    manage = client.post(book_url, data={"slot": choice}).location
    page = client.get(manage).get_data(as_text=True)
    assert "Wednesday, November 25, 2026 at 8:00 AM EST" in page


def test_a_week_across_the_clock_change_names_each_days_zone(app, client, book_url):
    from datetime import UTC, datetime

    app.config["CLINIC_NOW"] = datetime(2026, 10, 29, 12, tzinfo=UTC)
    text = _text(client.get(book_url).get_data(as_text=True))
    assert "Saturday, October 31 (times in EDT)" in text
    assert "Monday, November 2 (times in EST)" in text


def test_the_visit_length_is_the_appointment_types(app, client, book_url):
    from sqlalchemy import update

    from clinic.extensions import db
    from clinic.scheduling.models import AppointmentType

    with app.app_context():
        db.session.execute(
            update(AppointmentType)
            .where(AppointmentType.code == "consultation")
            .values(duration_minutes=60)
        )
        db.session.commit()
    page = client.get(book_url).get_data(as_text=True)
    assert "A visit takes about 60 minutes." in page


def test_an_old_or_broken_manage_link_says_what_to_do(app, client, book_url):
    from datetime import timedelta

    from tests.conftest import FIXED_NOW

    page = client.get(book_url).get_data(as_text=True)
    choice = re.search(r'name="slot" value="([^"]+)"', page).group(1)
    manage = client.post(book_url, data={"slot": choice}).location
    app.config["CLINIC_NOW"] = FIXED_NOW + timedelta(days=30)  # the visit is long over
    for url in (manage, "/appointments/manage/not-a-token", manage + "/reschedule"):
        response = client.get(url)
        page = response.get_data(as_text=True)
        assert response.status_code == 404
        assert "This link has expired or is not valid" in page
        assert "help you with your appointment" in page


@pytest.mark.parametrize(
    ("url", "method", "title"),
    [
        ("/no-such-page", "get", "Page not found"),
        ("/intake", "delete", "This page can't be opened this way"),
        ("/appointments/manage/any-token/cancel", "get", "This page can't be opened this way"),
    ],
)
def test_error_pages_speak_plainly(client, app, url, method, title):
    response = getattr(client, method)(url)
    page = response.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in page.replace("&#39;", "'")
    for jargon in ("Not Found", "Method Not Allowed", "something went wrong on our side"):
        assert jargon not in page


def test_back_after_sending_shows_the_thank_you_page_not_a_blank_form(app, client):
    """Back from the thank-you page, or the last step sent again, must not look unsent."""
    from tests.test_intake_form import STEPS, requests_in_db

    walk(client, ALL_SHOWN)
    last = f"/intake/{SECTIONS[-1].slug}"
    response = client.get(last)
    assert response.status_code == 302 and response.location.endswith("/intake/done")
    response = post_step(client, STEPS - 1, ALL_SHOWN)
    assert response.status_code == 302 and response.location.endswith("/intake/done")
    assert len(requests_in_db(app)) == 1
    # a new request can still be started from the first step
    assert "Step 1 of 8" in client.get("/intake").get_data(as_text=True)


def test_a_refused_time_has_its_message_by_the_times_too(app, client, book_url):
    """The summary links to the list of times, and the list itself carries the message."""
    response = client.post(book_url, data={"slot": "1|soon"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'href="#slot-list"' in page
    after = page[page.index('id="slot-list"') :]
    assert 'id="slot-error"' in after[:400] and "Choose a time from the list." in after[:400]
