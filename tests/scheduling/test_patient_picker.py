"""Choosing the patient on the staff booking form and the waitlist: a clinic has too many
patients for one list, so a form lists the most recent and a posted name search finds the rest;
a consultation request's page books or wait-lists its patient in one click."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from clinic.extensions import db
from clinic.intake.models import ConsultationRequest
from clinic.models import AuditEvent
from clinic.scheduling.models import Appointment, WaitlistEntry
from clinic.staff import patient_picker
from tests.scheduling.test_calendar_actions import forms_to

NEW = "/staff/calendar/new"
WAITLIST = "/staff/waitlist"


@pytest.fixture(autouse=True)
def short_lists(monkeypatch):
    """Five patients per list, so that the 40 of the schedule are more than one list holds."""
    monkeypatch.setattr(patient_picker, "LIMIT", 5)


def listed(page: str, select_name: str = "patient_id") -> list[str]:
    """The patients a form's select offers, by label (the empty first choice left out)."""
    block = re.search(rf'<select id="{select_name}" name="{select_name}".*?</select>', page, re.S)
    options = re.findall(  # the booking form's own markup, or WTForms' (selected first)
        r'<option (selected )?value="(\d+)"( selected)?>([^<]*)</option>', block.group(0)
    )
    return [label + (" *" if before or after else "") for before, _, after, label in options]


def urls(page: str) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', page)


def patient_searches(app, reason: str) -> int:
    with app.app_context():
        return len(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "search", AuditEvent.reason == reason)
            ).all()
        )


def test_the_booking_form_lists_recent_patients_and_finds_others_by_name(
    app, client, login, schedule
):
    login("front_desk")
    patel = schedule["providers"][0]
    page = client.get(
        f"{NEW}?provider_id={patel}&start=2026-11-26T09:00:00-05:00&return_to=week"
    ).get_data(as_text=True)
    # The five most recently added, by name.
    ids = schedule["patients"]
    assert listed(page) == [f"Test, Pat{i} (born 01/01/1950, #{ids[i]})" for i in range(35, 40)]
    assert "most recently added patients" in page

    search, booking = forms_to(page, NEW)
    response = client.post(NEW, data={**search["fields"], "q": "pat12", "find": "1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert listed(page) == [f"Test, Pat12 (born 01/01/1950, #{ids[12]})"]
    assert "Please check the form" not in page  # a search is not a failed booking
    # The other answers came through the search; the search stays for the booking form.
    search, booking = forms_to(page, NEW)
    assert booking["fields"]["start"] == "2026-11-26T09:00"
    assert booking["fields"]["provider_id"] == str(patel)
    assert booking["fields"]["return_to"] == "week"
    assert booking["fields"]["q"] == search["fields"]["q"] == "pat12"
    # A name never goes into a URL: the search posts, the Clear link carries no name.
    assert not [url for url in urls(page) if "pat12" in url.lower()]
    clear = f"{NEW}?provider_id={patel}&amp;start=2026-11-26T09:00&amp;return_to=week"
    assert clear in urls(page)  # Clear: the form as it was, without the search

    # Searching again keeps the patient already chosen listed and chosen.
    chosen = {**booking["fields"], "patient_id": ids[12], "appointment_type": "consultation"}
    again = client.post(NEW, data={**chosen, "q": "pat3", "find": "1"}).get_data(as_text=True)
    assert f"Test, Pat12 (born 01/01/1950, #{ids[12]}) *" in listed(again)
    assert f"Test, Pat30 (born 01/01/1950, #{ids[30]})" in listed(again)
    with app.app_context():
        assert db.session.scalar(select(Appointment.id)) is None  # searching booked nothing

    booked = client.post(NEW, data={**chosen, "q": "pat3"})
    assert booked.status_code == 302
    assert booked.headers["Location"] == "/staff/calendar/week?date=2026-11-26"
    with app.app_context():
        (appointment,) = db.session.scalars(select(Appointment)).all()
        assert appointment.patient_id == ids[12]
    # Every listing of patients is an audited access: the form, then each search.
    assert patient_searches(app, "booking form patient list") == 3


def test_a_refused_booking_keeps_the_search_and_the_chosen_patient(app, client, login, schedule):
    login("nurse")
    ids = schedule["patients"]
    response = client.post(
        NEW,
        data={"q": "Pat7", "patient_id": ids[7], "provider_id": "", "start": "", "return_to": ""},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert listed(page) == [f"Test, Pat7 (born 01/01/1950, #{ids[7]}) *"]
    assert "Provider: Choose the provider." in page
    assert '<input id="q" name="q" value="Pat7"' in page


@pytest.mark.parametrize(
    "q",
    ["", "   ", "%", "_", "\\", "Pat1 Test Pat1 Test Pat1", "\x00Pat2", "é" * 500, "a" * 5000],
)
def test_odd_searches_list_patients_without_an_error(client, login, schedule, q):
    login("front_desk")
    response = client.post(NEW, data={"q": q, "find": "1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert len(listed(page)) <= 5
    if q in ("%", "_", "\\"):  # matched literally: no name holds them
        assert listed(page) == []


def test_the_waitlist_form_finds_patients_by_name_and_adds_after_a_search(
    app, client, login, schedule
):
    login("front_desk")
    ids = schedule["patients"]
    page = client.get(WAITLIST).get_data(as_text=True)
    assert len(listed(page)) == 5 and "Test, Pat3 " not in page
    consultation = schedule["types"]["consultation"]
    brennan = schedule["providers"][1]
    answers = {"appointment_type_id": consultation, "provider_id": brennan, "note": "Mornings"}
    response = client.post(WAITLIST, data={**answers, "q": "Pat3", "find": "1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert listed(page) == [f"Test, Pat3 (born 01/01/1950, #{ids[3]})"] + [
        f"Test, Pat{i} (born 01/01/1950, #{ids[i]})" for i in range(30, 34)
    ]
    assert f'<option selected value="{consultation}">' in page
    assert f'<option selected value="{brennan}">' in page
    assert "Mornings</textarea>" in page
    assert not [url for url in urls(page) if "pat3" in url.lower()]
    with app.app_context():
        assert db.session.scalar(select(WaitlistEntry.id)) is None  # searching added no one

    added = client.post(WAITLIST, data={**answers, "q": "Pat3", "patient_id": ids[3]})
    assert added.status_code == 302
    with app.app_context():
        (entry,) = db.session.scalars(select(WaitlistEntry)).all()
        assert (entry.patient_id, entry.provider_id, entry.note) == (ids[3], brennan, "Mornings")


def test_a_request_page_books_or_wait_lists_its_patient(app, client, login, make_request):
    request_id = make_request()
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    login("front_desk")
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    book_url = f"{NEW}?patient_id={patient_id}"
    wait_url = f"{WAITLIST}?patient_id={patient_id}#add"
    assert book_url in urls(page) and wait_url in urls(page)

    form = client.get(book_url).get_data(as_text=True)
    assert [label for label in listed(form) if label.endswith(" *")] == [
        f"Okafor, Margaret (born 04/17/1952, #{patient_id}) *"
    ]
    waitlist = client.get(wait_url.split("#")[0]).get_data(as_text=True)
    assert f"Okafor, Margaret (born 04/17/1952, #{patient_id}) *" in listed(waitlist)

    client.post("/staff/logout")
    login("billing")  # sees the request, books nothing
    page = client.get(f"/staff/requests/{request_id}").get_data(as_text=True)
    assert book_url not in urls(page) and wait_url not in urls(page)


def test_a_request_with_red_flags_is_booked_only_once_they_are_acknowledged(
    app, client, login, make_request
):
    """The red flags come first: no booking shortcut on their page until a nurse or physician
    has acknowledged them."""
    request_id = make_request(rf_fever="new")
    with app.app_context():
        patient_id = db.session.get(ConsultationRequest, request_id).patient_id
    book_url = f"{NEW}?patient_id={patient_id}"
    login("nurse")
    assert book_url not in urls(client.get(f"/staff/requests/{request_id}").get_data(as_text=True))
    assert client.post(f"/staff/requests/{request_id}/acknowledge").status_code == 302
    assert book_url in urls(client.get(f"/staff/requests/{request_id}").get_data(as_text=True))
