"""Create, move and cancel from the day and week grids themselves, and back to the same view.

Each appointment in a grid carries a disclosure with the Move and Cancel forms (they post to
the appointment's own routes with return_to); each provider's working day in the week carries
a Book link that starts at the first free quarter hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from clinic.extensions import db
from clinic.scheduling import availability as av
from clinic.scheduling.models import TimeOff
from clinic.staff.calendar_grid import _first_free
from tests.scheduling.conftest import get_appointment, ny
from tests.scheduling.test_calendar import BRENNAN, PATEL, row_by_label, table


class Forms(HTMLParser):
    """Every <form>: its action and its fields' values (a select's chosen option)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}, "labels": []})
        elif not self.forms:
            return
        elif tag == "input" and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self.select = attrs.get("name")
            self.forms[-1]["fields"].setdefault(self.select, "")
        elif tag == "option" and self.select and "selected" in attrs:
            self.forms[-1]["fields"][self.select] = attrs.get("value", "")
        elif tag == "label":
            self.forms[-1]["labels"].append(attrs.get("for"))

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def forms_to(html: str, action: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    return [f for f in parser.forms if f["action"] == action]


def week(client, day: str) -> list[list[dict]]:
    return table(client.get(f"/staff/calendar/week?date={day}").get_data(as_text=True), "calendar")


def book_link(cell: dict) -> str | None:
    links = [href for href in cell["links"] if href.startswith("/staff/calendar/new")]
    assert len(links) <= 1, links
    return links[0] if links else None


# -- the week's Book links ----------------------------------------------------------------------


def test_week_book_links_start_at_the_first_free_quarter_hour(app, client, login, schedule, book):
    # Now is Tuesday 10:00 in New York. Patel: Tuesday 10:00 (with its buffer, to 11:00);
    # Wednesday 8:00 and 9:00 back to back; Brennan: time off all Thursday.
    book(ny(2026, 11, 24, 10, 0), provider=0, patient=0)
    book(ny(2026, 11, 25, 8, 0), provider=0, patient=1)
    book(ny(2026, 11, 25, 9, 0), provider=0, patient=2)
    with app.app_context():
        db.session.add(
            TimeOff(
                provider_id=schedule["providers"][1],
                start_at=ny(2026, 11, 26, 0, 0),
                end_at=ny(2026, 11, 27, 0, 0),
                reason="Conference",
            )
        )
        db.session.commit()
    login("front_desk")
    rows = week(client, "2026-11-24")
    assert [c["text"] for c in rows[0]] == ["Day", PATEL, BRENNAN]
    patel, brennan = schedule["providers"]
    expected = {
        ("Mon Nov 23", 1): None,  # the past
        ("Mon Nov 23", 2): None,
        ("Tue Nov 24", 1): (patel, "2026-11-24T11:00:00-05:00"),
        ("Tue Nov 24", 2): (brennan, "2026-11-24T10:00:00-05:00"),
        ("Wed Nov 25", 1): (patel, "2026-11-25T10:00:00-05:00"),
        ("Thu Nov 26", 1): (patel, "2026-11-26T08:00:00-05:00"),
        ("Thu Nov 26", 2): None,  # time off
    }
    for (label, column), want in expected.items():
        link = book_link(row_by_label(rows, label)[column])
        if want is None:
            assert link is None, (label, column, link)
            continue
        query = parse_qs(urlsplit(link).query)
        assert query == {
            "provider_id": [str(want[0])],
            "start": [want[1]],
            "return_to": ["week"],
        }, (label, column)

    assert (
        "Book 11:00 AM with Dr. Anika Patel on Tue Nov 24"
        in row_by_label(rows, "Tue Nov 24")[1]["text"]
    )

    # The link opens the form filled in; booking there comes back to the week.
    link = book_link(row_by_label(rows, "Tue Nov 24")[1])
    page = client.get(link).get_data(as_text=True)
    search, form = forms_to(page, "/staff/calendar/new")  # the name search, the booking
    assert search["fields"]["q"] == ""
    assert form["fields"]["start"] == "2026-11-24T11:00"
    assert form["fields"]["provider_id"] == str(patel)
    assert form["fields"]["return_to"] == "week"
    assert 'href="/staff/calendar/week?date=2026-11-24">&larr; Week calendar' in page
    response = client.post(
        "/staff/calendar/new",
        data={
            **form["fields"],
            "patient_id": schedule["patients"][5],
            "appointment_type": "consultation",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/calendar/week?date=2026-11-24"
    rows = week(client, "2026-11-24")
    tuesday = row_by_label(rows, "Tue Nov 24")[1]
    assert "11:00 AM Pat5 Test" in tuesday["text"]
    # It ends at noon with its buffer, and the lunch break follows.
    assert parse_qs(urlsplit(book_link(tuesday)).query)["start"] == ["2026-11-24T13:00:00-05:00"]


def test_week_book_links_across_the_march_clock_change(app, client, login, schedule):
    login("front_desk")
    rows = week(client, "2027-03-14")  # clocks go forward that Sunday at 2:00
    starts = {
        label: parse_qs(urlsplit(book_link(row_by_label(rows, label)[1])).query)["start"]
        for label in ("Sat Mar 13", "Sun Mar 14")
    }
    assert starts == {
        "Sat Mar 13": ["2027-03-13T08:00:00-05:00"],
        "Sun Mar 14": ["2027-03-14T08:00:00-04:00"],
    }
    assert "Book 8:00 AM" in row_by_label(rows, "Sun Mar 14")[1]["text"]


def test_a_full_day_has_no_book_link(app, client, login, schedule, book):
    # Brennan's Friday: 8-12 and 13-17 filled with 45+15 minute consultations.
    for hour in (8, 9, 10, 11, 13, 14, 15, 16):
        book(ny(2026, 11, 27, hour, 0), provider=1, patient=hour)
    login("front_desk")
    friday = row_by_label(week(client, "2026-11-27"), "Fri Nov 27")
    assert book_link(friday[2]) is None
    assert book_link(friday[1]) is not None


def test_first_free_skips_busy_spans_and_rounds_to_the_quarter_hour():
    def at(hour, minute=0):
        return datetime(2026, 11, 25, hour, minute, tzinfo=UTC)

    working = [av.Interval(at(13), at(17)), av.Interval(at(18), at(22))]
    assert _first_free(working, [], at(9)) == at(13)
    assert _first_free(working, [], at(14, 1)) == at(14, 15)
    assert _first_free(working, [], at(14, 0) + timedelta(seconds=1)) == at(14, 15)
    assert _first_free(working, [(at(13), at(13, 50))], at(9)) == at(14)
    # Back to back spans, then one that ends in the gap between intervals.
    busy = [(at(13), at(14)), (at(14), at(16, 55)), (at(16, 50), at(18, 5))]
    assert _first_free(working, busy, at(9)) == at(18, 15)
    # A quarter hour left before the interval ends is enough; less is not.
    assert _first_free([av.Interval(at(13), at(14))], [(at(13), at(13, 45))], at(9)) == at(13, 45)
    assert _first_free([av.Interval(at(13), at(14))], [(at(13), at(13, 50))], at(9)) is None
    assert _first_free(working, [], at(22)) is None


# -- move and cancel from the grids -------------------------------------------------------------


def test_move_from_the_week_comes_back_to_the_week(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 24, 11, 0), provider=0, patient=0)
    login("front_desk")
    html = client.get("/staff/calendar/week?date=2026-11-24").get_data(as_text=True)
    (move,) = forms_to(html, f"/staff/appointments/{appointment_id}/move")
    assert move["fields"]["start"] == "2026-11-24T11:00"
    assert move["fields"]["provider_id"] == str(schedule["providers"][0])
    assert move["fields"]["return_to"] == "week"
    assert move["labels"] == [f"move-start-{appointment_id}", f"move-provider-{appointment_id}"]
    assert "Move or cancel" in html

    response = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={
            **move["fields"],
            "start": "2026-11-26T14:30",
            "provider_id": schedule["providers"][1],
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/calendar/week?date=2026-11-26"
    moved = get_appointment(app, appointment_id)
    assert moved.start_at == datetime(2026, 11, 26, 19, 30, tzinfo=UTC)
    assert moved.provider_id == schedule["providers"][1]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Appointment #{appointment_id} moved to Thu Nov 26, 2026 2:30 PM EST" in page
    rows = table(page, "calendar")
    assert "Pat0" not in row_by_label(rows, "Tue Nov 24")[1]["text"]
    assert "2:30 PM Pat0 Test" in row_by_label(rows, "Thu Nov 26")[2]["text"]


def test_a_refused_move_from_the_week_keeps_the_way_back(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 24, 11, 0), provider=0, patient=0)
    book(ny(2026, 11, 25, 9, 0), provider=0, patient=1)
    login("front_desk")
    clash = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={
            "start": "2026-11-25T09:15",
            "provider_id": schedule["providers"][0],
            "return_to": "week",
        },
    )
    assert clash.status_code == 409
    page = clash.get_data(as_text=True)
    assert "That time is" in page
    (move,) = forms_to(page, f"/staff/appointments/{appointment_id}/move")
    assert move["fields"]["return_to"] == "week" and move["fields"]["start"] == "2026-11-25T09:15"
    (cancel,) = forms_to(page, f"/staff/appointments/{appointment_id}/cancel")
    assert cancel["fields"]["return_to"] == "week"
    assert get_appointment(app, appointment_id).start_at == datetime(2026, 11, 24, 16, tzinfo=UTC)
    # The second try, from that page, lands on the week.
    retry = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={**move["fields"], "start": "2026-11-25T10:00"},
    )
    assert retry.headers["Location"] == "/staff/calendar/week?date=2026-11-25"


def test_cancel_from_the_week(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    login("front_desk")
    html = client.get("/staff/calendar/week?date=2026-11-25").get_data(as_text=True)
    (cancel,) = forms_to(html, f"/staff/appointments/{appointment_id}/cancel")
    assert cancel["fields"] == {
        "csrf_token": cancel["fields"]["csrf_token"],
        "return_to": "week",
        "reason": "",
    }
    refused = client.post(f"/staff/appointments/{appointment_id}/cancel", data=cancel["fields"])
    assert refused.status_code == 422
    assert "Give a reason for cancelling." in refused.get_data(as_text=True)
    assert get_appointment(app, appointment_id).status == "booked"

    response = client.post(
        f"/staff/appointments/{appointment_id}/cancel",
        data={**cancel["fields"], "reason": "Patient called"},
    )
    assert response.headers["Location"] == "/staff/calendar/week?date=2026-11-25"
    cancelled = get_appointment(app, appointment_id)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "Patient called"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Appointment #{appointment_id} cancelled." in page
    wednesday = row_by_label(table(page, "calendar"), "Wed Nov 25")[1]
    assert "Pat0 Test" in wednesday["text"] and "Cancelled" in wednesday["text"]
    # A cancelled appointment offers nothing more; its time is free to book again.
    assert not forms_to(page, f"/staff/appointments/{appointment_id}/move")
    assert not forms_to(page, f"/staff/appointments/{appointment_id}/cancel")
    start = parse_qs(urlsplit(book_link(wednesday)).query)["start"]
    assert start == ["2026-11-25T08:00:00-05:00"]


@pytest.mark.parametrize(
    ("status", "move", "cancel"),
    [
        ("booked", True, True),
        ("pending", True, True),
        ("arrived", False, True),
        ("checked-in", False, False),
        ("fulfilled", False, False),
        ("noshow", False, False),
        ("entered-in-error", False, False),
    ],
)
def test_the_grids_offer_what_the_status_allows(
    app, client, login, schedule, book, status, move, cancel
):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0, status=status)
    login("front_desk")
    for url in ("/staff/calendar/week?date=2026-11-25", "/staff/calendar/day?date=2026-11-25"):
        html = client.get(url).get_data(as_text=True)
        assert bool(forms_to(html, f"/staff/appointments/{appointment_id}/move")) is move, url
        assert bool(forms_to(html, f"/staff/appointments/{appointment_id}/cancel")) is cancel, url


def test_the_day_grid_moves_and_cancels_back_to_the_day(app, client, login, schedule, book):
    first = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    second = book(ny(2026, 11, 25, 13, 0), provider=1, patient=1)
    login("front_desk")
    html = client.get("/staff/calendar/day?date=2026-11-25").get_data(as_text=True)
    (move,) = forms_to(html, f"/staff/appointments/{first}/move")
    (cancel,) = forms_to(html, f"/staff/appointments/{second}/cancel")
    assert move["fields"]["return_to"] == cancel["fields"]["return_to"] == "day"
    moved = client.post(
        f"/staff/appointments/{first}/move", data={**move["fields"], "start": "2026-11-27T10:00"}
    )
    assert moved.headers["Location"] == "/staff/calendar/day?date=2026-11-27"
    gone = client.post(
        f"/staff/appointments/{second}/cancel", data={**cancel["fields"], "reason": "Unwell"}
    )
    assert gone.headers["Location"] == "/staff/calendar/day?date=2026-11-25"
    assert get_appointment(app, second).status == "cancelled"


@pytest.mark.parametrize("return_to", ["https://evil.example/", "//evil.example", "audit", ""])
def test_an_unknown_return_to_goes_to_the_day(app, client, login, schedule, book, return_to):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    login("front_desk")
    response = client.post(
        f"/staff/appointments/{appointment_id}/move",
        data={"start": "2026-11-25T10:00", "return_to": return_to},
    )
    assert response.headers["Location"] == "/staff/calendar/day?date=2026-11-25"
    page = client.get(f"/staff/calendar/new?return_to={return_to}").get_data(as_text=True)
    search, form = forms_to(page, "/staff/calendar/new")
    assert search["fields"]["return_to"] == form["fields"]["return_to"] == "day"


def test_billing_sees_the_grids_without_actions(app, client, login, schedule, book):
    appointment_id = book(ny(2026, 11, 25, 9, 0), provider=0, patient=0)
    login("billing")
    for url in ("/staff/calendar/week?date=2026-11-25", "/staff/calendar/day?date=2026-11-25"):
        html = client.get(url).get_data(as_text=True)
        assert "Pat0 Test" in html, url
        assert "Move or cancel" not in html and "/staff/calendar/new" not in html, url
        assert not forms_to(html, f"/staff/appointments/{appointment_id}/move")
