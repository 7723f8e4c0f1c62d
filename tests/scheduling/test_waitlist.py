"""The waitlist: adding patients, the slots that free up (cancelled, moved away, entered in
error), booking one in one step."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.models import AuditEvent, Patient, StaffUser
from clinic.scheduling import services
from clinic.scheduling import waitlist as waitlist_services
from clinic.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    ClinicClosure,
    Provider,
    ScheduleException,
    TimeOff,
    WaitlistEntry,
)
from tests.conftest import FIXED_NOW
from tests.scheduling.conftest import appointment_audit_events

SLOT = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)  # Thu 09:00 in New York
PAGE = "/staff/waitlist"


@pytest.fixture
def booker(make_staff):
    return make_staff("physician", "booker@clinic.test")


def book(app, actor_id, patient_id, provider_id, start, type_code="consultation") -> int:
    with app.app_context():
        appointment = services.book_appointment(
            db.session.get(Patient, patient_id),
            db.session.scalars(select(AppointmentType).filter_by(code=type_code)).one(),
            db.session.get(Provider, provider_id),
            start,
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, actor_id),
            source="staff",
        )
        db.session.commit()
        return appointment.id


def cancel(app, actor_id, appointment_id, now=FIXED_NOW) -> None:
    with app.app_context():
        services.cancel(
            db.session.get(Appointment, appointment_id),
            "Patient asked",
            now=now,
            actor=db.session.get(StaffUser, actor_id),
        )
        db.session.commit()


def reschedule(app, actor_id, appointment_id, start, provider_id=None) -> None:
    with app.app_context():
        services.reschedule(
            db.session.get(Appointment, appointment_id),
            start,
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, actor_id),
            provider=db.session.get(Provider, provider_id) if provider_id else None,
        )
        db.session.commit()


def set_status(app, actor_id, appointment_id, status) -> None:
    with app.app_context():
        services.change_status(
            db.session.get(Appointment, appointment_id),
            status,
            now=FIXED_NOW,
            actor=db.session.get(StaffUser, actor_id),
        )
        db.session.commit()


def add_entry(app, patient_id, type_id, provider_id=None, days_ago=0, note="") -> int:
    with app.app_context():
        entry = WaitlistEntry(
            patient_id=patient_id,
            appointment_type_id=type_id,
            provider_id=provider_id,
            note=note,
            created_at=FIXED_NOW - timedelta(days=days_ago),
        )
        db.session.add(entry)
        db.session.commit()
        return entry.id


def name(app, patient_id) -> str:
    with app.app_context():
        return db.session.get(Patient, patient_id).display_name


def entry(app, entry_id) -> WaitlistEntry:
    with app.app_context():
        return db.session.get(WaitlistEntry, entry_id)


def freed_section(html: str) -> str:
    return html.split('id="freed"', 1)[1].split('id="waiting"', 1)[0]


def urls(html: str) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', html)


def freed_rows(html: str) -> list[str]:
    """Each freed slot's when, visit, provider and why, as text joined by ' | '."""
    body = freed_section(html).split("<tbody>", 1)[-1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
        text = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells[:4]]
        rows.append(" | ".join(text))
    return rows


def test_add_an_entry_and_see_it_listed(app, client, schedule, login):
    login("front_desk")
    patient = schedule["patients"][3]
    response = client.post(
        PAGE,
        data={
            "patient_id": str(patient),
            "appointment_type_id": str(schedule["types"]["consultation"]),
            "provider_id": "",
            "note": "  Mornings only  ",
        },
    )
    assert response.status_code == 302 and response.location.endswith(PAGE)
    with app.app_context():
        (stored,) = db.session.scalars(select(WaitlistEntry)).all()
        assert (stored.patient_id, stored.provider_id, stored.status) == (patient, None, "waiting")
        assert stored.appointment_type_id == schedule["types"]["consultation"]
        assert stored.note == "Mornings only" and stored.created_at == FIXED_NOW
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource_type == "waitlist_entry")
        ).one()
        assert event.action == "create" and event.patient_id == patient
    add_entry(
        app, schedule["patients"][4], schedule["types"]["procedure"], schedule["providers"][1], 9
    )

    html = client.get(PAGE).get_data(as_text=True)
    waiting = html.split('id="waiting"', 1)[1]
    assert name(app, patient) in waiting and name(app, schedule["patients"][4]) in waiting
    assert "New-patient consultation" in waiting and "Procedure" in waiting
    assert "<td>Any</td>" in waiting and "Dr. Thomas Brennan" in waiting
    assert "Today" in waiting and "9 days" in waiting and "Mornings only" in waiting
    # The longest waiting comes first.
    assert waiting.index(name(app, schedule["patients"][4])) < waiting.index(name(app, patient))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"patient_id": ""}, "patient_id", "Choose a patient."),
        ({"patient_id": "99999999"}, "patient_id", "Choose a patient."),
        ({"patient_id": "abc"}, "patient_id", "Choose a patient."),
        ({"patient_id": "\u00b2"}, "patient_id", "Choose a patient."),  # isdigit(), not int()
        ({"patient_id": "9" * 20}, "patient_id", "Choose a patient."),  # past the int column
        ({"appointment_type_id": ""}, "appointment_type_id", "Choose a kind of visit."),
        ({"appointment_type_id": "99999"}, "appointment_type_id", "Choose a kind of visit."),
        ({"provider_id": "99999"}, "provider_id", "Choose a provider, or any provider."),
        ({"provider_id": "x"}, "provider_id", "Choose a provider, or any provider."),
        ({"provider_id": "9" * 20}, "provider_id", "Choose a provider, or any provider."),
        ({"note": "x" * 301}, "note", "Use at most 300 characters."),
    ],
)
def test_field_errors_answer_422(app, client, schedule, login, change, field, message):
    login("nurse")
    data = {
        "patient_id": str(schedule["patients"][0]),
        "appointment_type_id": str(schedule["types"]["consultation"]),
        "provider_id": str(schedule["providers"][0]),
        "note": "x" * 300,
        **change,
    }
    response = client.post(PAGE, data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'id="{field}-error">{message}' in html
    assert 'aria-invalid="true"' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WaitlistEntry)) == 0


def test_the_same_wait_twice_is_refused(app, client, schedule, login):
    login("front_desk")
    data = {
        "patient_id": str(schedule["patients"][0]),
        "appointment_type_id": str(schedule["types"]["consultation"]),
        "provider_id": str(schedule["providers"][0]),
    }
    assert client.post(PAGE, data=data).status_code == 302
    again = client.post(PAGE, data=data)
    assert again.status_code == 422
    assert b"already waiting for this visit" in again.data
    # With any provider it is a different wait.
    assert client.post(PAGE, data={**data, "provider_id": ""}).status_code == 302


def test_remove_an_entry(app, client, schedule, login):
    login("front_desk")
    entry_id = add_entry(app, schedule["patients"][0], schedule["types"]["consultation"])
    response = client.post(f"{PAGE}/{entry_id}/remove")
    assert response.status_code == 302
    assert entry(app, entry_id).status == "removed"
    html = client.get(PAGE).get_data(as_text=True)
    assert name(app, schedule["patients"][0]) not in html
    # A second removal changes nothing and says so.
    client.post(f"{PAGE}/{entry_id}/remove")
    assert b"no longer on the waitlist" in client.get(PAGE).data
    assert client.post(f"{PAGE}/999999/remove").status_code == 404


def test_a_cancellation_frees_a_slot_offered_to_the_matching_patients(
    app, client, schedule, login, booker
):
    patel, brennan = schedule["providers"]
    consultation, procedure = schedule["types"]["consultation"], schedule["types"]["procedure"]
    p = schedule["patients"]
    any_provider = add_entry(app, p[10], consultation, None, days_ago=5)
    with_patel = add_entry(app, p[11], consultation, patel, days_ago=2)
    add_entry(app, p[12], consultation, brennan)  # another provider
    add_entry(app, p[13], procedure)  # another kind of visit
    booked_elsewhere = add_entry(app, p[14], consultation)
    with app.app_context():
        db.session.get(WaitlistEntry, booked_elsewhere).status = "booked"
        db.session.commit()

    login("front_desk")
    assert b"No freed slots right now." in client.get(PAGE).data
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))
    # Not offered: a past time, an old cancellation, a time taken again since.
    cancel(app, booker, book(app, booker, p[1], patel, FIXED_NOW - timedelta(hours=1)))
    cancel(
        app,
        booker,
        book(app, booker, p[2], patel, SLOT + timedelta(days=1)),
        now=FIXED_NOW - timedelta(days=15),
    )
    cancel(app, booker, book(app, booker, p[3], brennan, SLOT + timedelta(hours=2)))
    book(app, booker, p[4], brennan, SLOT + timedelta(hours=2))

    html = client.get(PAGE).get_data(as_text=True)
    freed = freed_section(html)
    assert freed.count("<tr>") == 2  # the header and one slot
    assert "Thu Nov 26, 2026 9:00 AM" in freed and "Dr. Anika Patel" in freed
    offers = re.findall(r"Offer this slot to ([^<]+)</button>", freed)
    assert offers == [name(app, p[10]), name(app, p[11])]  # longest waiting first
    assert f'action="/staff/waitlist/{any_provider}/book"' in freed
    assert f'action="/staff/waitlist/{with_patel}/book"' in freed
    assert 'name="start" value="2026-11-26T14:00:00+00:00"' in freed
    assert f'name="provider_id" value="{patel}"' in freed
    # Names on the page, never in its links.
    for url in urls(html):
        for patient_id in p[:15]:
            assert name(app, patient_id) not in url

    # Time off over the freed time takes it off the list.
    with app.app_context():
        db.session.add(
            TimeOff(provider_id=patel, start_at=SLOT, end_at=SLOT + timedelta(hours=3), reason="")
        )
        db.session.commit()
    assert b"Offer this slot to" not in client.get(PAGE).data


@pytest.mark.parametrize(
    "not_working",
    [
        lambda s: ClinicClosure(location_id=s["location"], day=SLOT.date(), reason="Holiday"),
        lambda s: ScheduleException(provider_id=s["providers"][0], day=SLOT.date(), reason="Off"),
        lambda s: ScheduleException(
            provider_id=s["providers"][0], day=SLOT.date(), start_time=time(13), end_time=time(17)
        ),
    ],
    ids=["clinic-closed", "day-off", "afternoon-only"],
)
def test_a_freed_slot_the_provider_no_longer_works_is_not_offered(
    app, client, schedule, login, booker, not_working
):
    """Closures and schedule exceptions added after the cancellation take the slot off the
    list, as time off does: staff booking would refuse it anyway."""
    p = schedule["patients"]
    add_entry(app, p[10], schedule["types"]["consultation"])
    cancel(app, booker, book(app, booker, p[0], schedule["providers"][0], SLOT))
    login("front_desk")
    assert b"Offer this slot to" in client.get(PAGE).data
    with app.app_context():
        db.session.add(not_working(schedule))
        db.session.commit()
    assert b"No freed slots right now." in client.get(PAGE).data


def test_a_time_moved_away_from_is_offered(app, client, schedule, login, booker):
    """A reschedule keeps the appointment's row and moves it: the time it left frees up as a
    cancellation's does, whether it moved to another time or to another provider."""
    patel, brennan = schedule["providers"]
    p = schedule["patients"]
    add_entry(app, p[10], schedule["types"]["consultation"])
    moved = book(app, booker, p[0], patel, SLOT)
    reschedule(app, booker, moved, SLOT + timedelta(days=1))  # to Fri 9 AM
    to_patel = book(app, booker, p[1], brennan, SLOT + timedelta(hours=4))  # Thu 1 PM
    reschedule(app, booker, to_patel, SLOT + timedelta(hours=4), provider_id=patel)
    login("front_desk")

    html = client.get(PAGE).get_data(as_text=True)
    assert freed_rows(html) == [
        "Thu Nov 26, 2026 9:00 AM | New-patient consultation | Dr. Anika Patel Main Street"
        " | Rescheduled Tue Nov 24, 10:00 AM",
        "Thu Nov 26, 2026 1:00 PM | New-patient consultation | Dr. Thomas Brennan Main Street"
        " | Rescheduled Tue Nov 24, 10:00 AM",
    ]
    offers = re.findall(r"Offer this slot to ([^<]+)</button>", freed_section(html))
    assert offers == [name(app, p[10])] * 2
    assert f'name="provider_id" value="{brennan}"' in freed_section(html)
    # Both moves are audited as before, with the old and the new time.
    with app.app_context():
        moves = [e for e in appointment_audit_events() if e.action == "update"]
        assert [(e.resource_id, e.changed_fields) for e in moves] == [
            (str(moved), ["start_at", "provider_id", "location_id"]),
            (str(to_patel), ["start_at", "provider_id", "location_id"]),
        ]
        assert moves[0].reason.startswith(f"from {SLOT.isoformat()} provider {patel}")

    # Moved back, the time is taken again and the one it left in between is free instead.
    reschedule(app, booker, moved, SLOT)
    rows = freed_rows(client.get(PAGE).get_data(as_text=True))
    assert [row.split(" | ")[0] for row in rows] == [
        "Thu Nov 26, 2026 1:00 PM",
        "Fri Nov 27, 2026 9:00 AM",
    ]


@pytest.mark.parametrize(
    ("start", "status", "offered"),
    [
        (SLOT, AppointmentStatus.ENTERED_IN_ERROR, "Entered in error Tue Nov 24, 10:00 AM"),
        (SLOT, AppointmentStatus.CANCELLED, "Cancelled Tue Nov 24, 10:00 AM"),
        # Begun before it is marked: its time has come, nothing is left to offer.
        (FIXED_NOW - timedelta(minutes=30), AppointmentStatus.NOSHOW, None),
        (FIXED_NOW - timedelta(minutes=30), AppointmentStatus.ENTERED_IN_ERROR, None),
        (FIXED_NOW - timedelta(minutes=30), AppointmentStatus.CANCELLED, None),
    ],
    ids=["entered-in-error", "cancelled", "no-show", "begun-in-error", "begun-cancelled"],
)
def test_what_a_status_change_frees(app, client, schedule, login, booker, start, status, offered):
    p = schedule["patients"]
    add_entry(app, p[10], schedule["types"]["consultation"])
    appointment = book(app, booker, p[0], schedule["providers"][0], start)
    if status == AppointmentStatus.CANCELLED:
        cancel(app, booker, appointment)
    else:
        set_status(app, booker, appointment, status)
    login("front_desk")
    rows = freed_rows(client.get(PAGE).get_data(as_text=True))
    if offered is None:
        assert rows == []
    else:
        assert rows == [
            "Thu Nov 26, 2026 9:00 AM | New-patient consultation | Dr. Anika Patel Main Street"
            f" | {offered}"
        ]


FOUR_STARTS = (0, 1, 2, 4)  # hours after 9 AM (noon is lunch): one more than the limit set below


def _stale_rebooked(app, booker, schedule, day):
    """Freed, then booked again by someone else."""
    p, patel = schedule["patients"], schedule["providers"][0]
    for i, hour in enumerate(FOUR_STARTS):
        cancel(app, booker, book(app, booker, p[i], patel, day + timedelta(hours=hour)))
        book(app, booker, p[20 + i], patel, day + timedelta(hours=hour))


def _stale_day_off(app, booker, schedule, day):
    """Freed, then the provider took the day off (only the staff booking check can tell)."""
    p, patel = schedule["patients"], schedule["providers"][0]
    for i, hour in enumerate(FOUR_STARTS):
        cancel(app, booker, book(app, booker, p[i], patel, day + timedelta(hours=hour)))
    with app.app_context():
        db.session.add(ScheduleException(provider_id=patel, day=day.date(), reason="Off"))
        db.session.commit()


def _stale_freed_again(app, booker, schedule, day):
    """One time freed four times over: one slot (it is listed, once)."""
    p, patel = schedule["patients"], schedule["providers"][0]
    for i in range(len(FOUR_STARTS)):
        cancel(app, booker, book(app, booker, p[i], patel, day))


@pytest.mark.parametrize(
    ("make_stale", "listed_first"),
    [
        (_stale_rebooked, []),
        (_stale_day_off, []),
        (_stale_freed_again, ["Wed Nov 25, 2026 9:00 AM"]),
    ],
    ids=["rebooked", "day-off", "freed-again"],
)
def test_stale_freed_times_do_not_crowd_out_free_ones(
    app, client, schedule, login, booker, monkeypatch, make_stale, listed_first
):
    """The limit counts the slots shown: more stale rows than it, earlier than a free slot,
    do not hide that slot."""
    monkeypatch.setattr(waitlist_services, "MAX_FREED_SLOTS", 3)
    p = schedule["patients"]
    add_entry(app, p[10], schedule["types"]["consultation"])
    make_stale(app, booker, schedule, SLOT - timedelta(days=1))  # from Wed 9 AM
    cancel(app, booker, book(app, booker, p[5], schedule["providers"][0], SLOT))
    login("front_desk")
    rows = freed_rows(client.get(PAGE).get_data(as_text=True))
    assert [row.split(" | ")[0] for row in rows] == [*listed_first, "Thu Nov 26, 2026 9:00 AM"]


def test_at_most_max_freed_slots_are_shown(app, client, schedule, login, booker, monkeypatch):
    monkeypatch.setattr(waitlist_services, "MAX_FREED_SLOTS", 3)
    p = schedule["patients"]
    for i, hour in enumerate(FOUR_STARTS):  # Thu 9, 10, 11 AM and 1 PM
        start = SLOT + timedelta(hours=hour)
        cancel(app, booker, book(app, booker, p[i], schedule["providers"][0], start))
    login("front_desk")
    html = client.get(PAGE).get_data(as_text=True)
    assert [row.split(" | ")[0] for row in freed_rows(html)] == [
        "Thu Nov 26, 2026 9:00 AM",
        "Thu Nov 26, 2026 10:00 AM",
        "Thu Nov 26, 2026 11:00 AM",
    ]
    assert "At most 3 freed slots are listed, the earliest first." in html


def test_a_freed_slot_past_the_daily_cap_is_not_offered(app, client, schedule, login, booker):
    """Booking it would be refused for the type's per-day cap, so it is not offered: the same
    check as the booking, per provider and day."""
    patel, brennan = schedule["providers"]
    p = schedule["patients"]
    add_entry(app, p[10], schedule["types"]["consultation"])
    with app.app_context():
        db.session.get(AppointmentType, schedule["types"]["consultation"]).daily_cap = 1
        db.session.commit()
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))
    book(app, booker, p[1], brennan, SLOT + timedelta(hours=5))  # another provider: no matter
    book(app, booker, p[2], patel, SLOT + timedelta(days=1))  # another day: no matter
    login("front_desk")
    assert name(app, p[10]) in freed_section(client.get(PAGE).get_data(as_text=True))

    book(app, booker, p[3], patel, SLOT + timedelta(hours=5))  # Patel's one for Thursday
    assert b"No freed slots right now." in client.get(PAGE).data


def offers(html: str) -> list[str]:
    return re.findall(r"Offer this slot to ([^<]+)</button>", freed_section(html))


def test_a_freed_slot_is_offered_for_shorter_visits_that_fit_in_it(
    app, client, schedule, login, booker
):
    """A cancelled consultation (Thu 9:00-9:45, its buffer to 10:00) can hold a 20-minute
    post-procedure visit (to 9:30 with its buffer) or a phone check-in, not a procedure (its
    buffers run from 8:30 to 10:30: time nobody gave up)."""
    patel, brennan = schedule["providers"]
    types = schedule["types"]
    p = schedule["patients"]
    add_entry(app, p[10], types["post_procedure_visit"], days_ago=9)
    add_entry(app, p[11], types["procedure"], days_ago=8)  # longer: not offered
    add_entry(app, p[12], types["phone_check_in"], brennan, days_ago=7)  # another provider
    add_entry(app, p[13], types["consultation"], days_ago=6)
    check_in = add_entry(app, p[14], types["phone_check_in"], patel, days_ago=5)
    add_entry(app, p[0], types["phone_check_in"], days_ago=4)  # who gave the time up
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))

    login("front_desk")
    html = client.get(PAGE).get_data(as_text=True)
    assert offers(html) == [  # longest waiting first, the other kinds of visit named
        f"{name(app, p[10])}: Post-procedure visit, 20 min",
        name(app, p[13]),
        f"{name(app, p[14])}: Phone check-in, 15 min",
    ]
    assert len(freed_rows(html)) == 1  # one freed time, its row still the consultation's
    assert "| New-patient consultation |" in freed_rows(html)[0]

    response = client.post(
        f"{PAGE}/{check_in}/book", data={"start": SLOT.isoformat(), "provider_id": patel}
    )
    assert response.status_code == 302
    with app.app_context():
        appointment = db.session.get(Appointment, entry(app, check_in).appointment_id)
        assert appointment.appointment_type.code == "phone_check_in"
        assert (appointment.start_at, appointment.patient_id) == (SLOT, p[14])
    html = client.get(PAGE).get_data(as_text=True)
    assert "Booked: Phone check-in, Thu Nov 26, 9:00 AM with Dr. Anika Patel." in html
    assert offers(html) == []  # booked again, if only in part: no longer offered


@pytest.mark.parametrize(
    "change, offered",
    [
        ({}, True),
        ({"buffer_before_minutes": 5}, False),  # would start before the time given up
        ({"duration_minutes": 55}, False),  # with its 10 minutes after, to 10:05
        ({"duration_minutes": 40, "buffer_after_minutes": 20}, True),  # 9:00-10:00 exactly
        ({"active": False}, False),  # no longer booked at all
        ({"daily_cap": 1}, False),  # Patel has one that Thursday already
        ({"daily_cap": 2}, True),
    ],
)
def test_what_another_kind_of_visit_needs_to_take_a_freed_time(
    app, client, schedule, login, booker, change, offered
):
    patel = schedule["providers"][0]
    p = schedule["patients"]
    add_entry(app, p[10], schedule["types"]["post_procedure_visit"])
    with app.app_context():
        visit = db.session.get(AppointmentType, schedule["types"]["post_procedure_visit"])
        for field, value in change.items():
            setattr(visit, field, value)
        db.session.commit()
    if change.get("active", True):
        book(app, booker, p[1], patel, SLOT + timedelta(hours=5), "post_procedure_visit")
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))
    login("front_desk")
    html = client.get(PAGE).get_data(as_text=True)
    assert len(freed_rows(html)) == 1
    assert bool(offers(html)) is offered, offers(html)


def test_offering_books_the_slot_in_one_step(app, client, schedule, login, booker):
    patel = schedule["providers"][0]
    p = schedule["patients"]
    entry_id = add_entry(app, p[10], schedule["types"]["consultation"], note="Any morning")
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))
    login("front_desk")

    response = client.post(
        f"{PAGE}/{entry_id}/book",
        data={"start": SLOT.isoformat(), "provider_id": str(patel)},
    )
    assert response.status_code == 302 and response.location.endswith(PAGE)
    assert name(app, p[10]) not in response.location

    with app.app_context():
        stored = db.session.get(WaitlistEntry, entry_id)
        assert stored.status == "booked" and stored.appointment_id is not None
        appointment = db.session.get(Appointment, stored.appointment_id)
        assert appointment.patient_id == p[10] and appointment.provider_id == patel
        assert appointment.start_at == SLOT and appointment.status == AppointmentStatus.BOOKED
        assert appointment.source == "staff"
        front_desk = db.session.scalars(select(StaffUser).filter_by(role="front_desk")).one()
        assert appointment.created_by_id == front_desk.id
        actions = {
            (e.resource_type, e.action)
            for e in db.session.scalars(select(AuditEvent).where(AuditEvent.patient_id == p[10]))
        }
        assert {("appointment", "create"), ("waitlist_entry", "update")} <= actions

    page = client.get(PAGE)
    html = page.get_data(as_text=True)
    assert "Booked: New-patient consultation, Thu Nov 26, 9:00 AM with Dr. Anika Patel." in html
    assert "Offer this slot to" not in html  # the time is taken now
    assert name(app, p[10]) not in html.split('id="waiting"', 1)[1]  # off the waiting list

    # Booking the same entry again (a second tab) books nothing more.
    client.post(f"{PAGE}/{entry_id}/book", data={"start": SLOT.isoformat(), "provider_id": patel})
    assert b"no longer on the waitlist" in client.get(PAGE).data
    with app.app_context():
        count = select(func.count()).select_from(Appointment).where(Appointment.patient_id == p[10])
        assert db.session.scalar(count) == 1


def test_slot_taken_meanwhile_books_nothing(app, client, schedule, login, booker):
    patel = schedule["providers"][0]
    p = schedule["patients"]
    entry_id = add_entry(app, p[10], schedule["types"]["consultation"])
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))
    login("front_desk")
    assert b"Offer this slot to" in client.get(PAGE).data
    # Someone else books an overlapping time before the offer is clicked.
    book(app, booker, p[1], patel, SLOT + timedelta(minutes=30))

    response = client.post(
        f"{PAGE}/{entry_id}/book", data={"start": SLOT.isoformat(), "provider_id": str(patel)}
    )
    assert response.status_code == 302
    html = client.get(PAGE).get_data(as_text=True)
    assert "That time is no longer available (someone took it meanwhile" in html
    assert "nothing was booked." in html
    assert entry(app, entry_id).status == "waiting"
    assert entry(app, entry_id).appointment_id is None
    with app.app_context():
        count = select(func.count()).select_from(Appointment).where(Appointment.patient_id == p[10])
        assert db.session.scalar(count) == 0


def test_offering_a_slot_past_the_daily_cap_says_so(app, client, schedule, login, booker):
    """Offering books through the staff path, which keeps the per-day cap: the page names the
    cap instead of a generic refusal, and nothing is booked."""
    patel = schedule["providers"][0]
    p = schedule["patients"]
    entry_id = add_entry(app, p[10], schedule["types"]["consultation"])
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))
    book(app, booker, p[1], patel, SLOT + timedelta(hours=5))  # same day, 2 PM
    with app.app_context():
        db.session.get(AppointmentType, schedule["types"]["consultation"]).daily_cap = 1
        db.session.commit()
    login("front_desk")

    response = client.post(
        f"{PAGE}/{entry_id}/book", data={"start": SLOT.isoformat(), "provider_id": str(patel)}
    )
    assert response.status_code == 302
    html = client.get(PAGE).get_data(as_text=True)
    assert (
        "The day&#39;s cap of 1 New-patient consultation appointments with Dr. Anika Patel "
        "is reached. Nothing was booked." in html
    )
    assert entry(app, entry_id).status == "waiting"
    with app.app_context():
        count = select(func.count()).select_from(Appointment).where(Appointment.patient_id == p[10])
        assert db.session.scalar(count) == 0


@pytest.mark.parametrize(
    "form",
    [
        {"start": "2026-11-26T14:00:00", "provider_id": "P"},  # no offset
        {"start": "tomorrow", "provider_id": "P"},
        {"start": SLOT.isoformat(), "provider_id": "999999"},
        {"start": SLOT.isoformat(), "provider_id": "9" * 20},  # past the int column
        {"start": SLOT.isoformat()},
        {"start": SLOT.isoformat(), "provider_id": "OTHER"},  # the entry waits for Patel
    ],
)
def test_tampered_booking_form_is_400(app, client, schedule, login, form):
    patel, brennan = schedule["providers"]
    entry_id = add_entry(app, schedule["patients"][10], schedule["types"]["consultation"], patel)
    if "provider_id" in form:
        form = {
            **form,
            "provider_id": {"P": patel, "OTHER": brennan}.get(
                form["provider_id"], form["provider_id"]
            ),
        }
    login("nurse")
    assert client.post(f"{PAGE}/{entry_id}/book", data=form).status_code == 400
    assert entry(app, entry_id).status == "waiting"


def test_a_past_time_is_not_booked(app, client, schedule, login):
    patel = schedule["providers"][0]
    entry_id = add_entry(app, schedule["patients"][10], schedule["types"]["consultation"])
    login("nurse")
    past = FIXED_NOW - timedelta(hours=1)
    response = client.post(
        f"{PAGE}/{entry_id}/book", data={"start": past.isoformat(), "provider_id": patel}
    )
    assert response.status_code == 302
    assert b"no longer bookable" in client.get(PAGE).data
    assert entry(app, entry_id).status == "waiting"


def test_billing_reads_but_changes_nothing(app, client, schedule, login, booker):
    p = schedule["patients"]
    entry_id = add_entry(app, p[10], schedule["types"]["consultation"])
    cancel(app, booker, book(app, booker, p[0], schedule["providers"][0], SLOT))
    login("billing")
    html = client.get(PAGE).get_data(as_text=True)
    assert name(app, p[10]) in html  # listed, and shown as waiting for the freed slot
    assert "Offer this slot to" not in html and book_buttons(html) == []
    assert earliest(html)[name(app, p[10])] == (
        "Wed Nov 25, 2026 8:00 AM with Dr. Anika Patel Main Street"
    )
    assert "Add to the waitlist" not in html and "Remove" not in html
    data = {"patient_id": p[11], "appointment_type_id": schedule["types"]["consultation"]}
    assert client.post(PAGE, data=data).status_code == 403
    assert client.post(f"{PAGE}/{entry_id}/remove").status_code == 403
    booking = {"start": SLOT.isoformat(), "provider_id": schedule["providers"][0]}
    assert client.post(f"{PAGE}/{entry_id}/book", data=booking).status_code == 403
    assert entry(app, entry_id).status == "waiting"


def test_admin_sees_no_waitlist(app, client, schedule, login):
    entry_id = add_entry(app, schedule["patients"][10], schedule["types"]["consultation"])
    login("admin")
    assert client.get(PAGE).status_code == 403
    data = {"patient_id": schedule["patients"][11], "appointment_type_id": 1}
    assert client.post(PAGE, data=data).status_code == 403
    assert client.post(f"{PAGE}/{entry_id}/remove").status_code == 403
    assert client.post(f"{PAGE}/{entry_id}/book", data={}).status_code == 403


def test_waitlist_needs_a_login(app, client, schedule):
    assert client.get(PAGE).status_code == 302
    assert client.post(PAGE, data={}).status_code == 302


def test_viewing_the_waitlist_is_audited(app, client, schedule, login):
    login("physician")
    assert client.get(PAGE).status_code == 200
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource_type == "waitlist_entry")
        ).one()
        assert event.action == "search" and event.actor_role == "physician"


def earliest(html: str) -> dict[str, str]:
    """Each waiting patient's earliest open time as the page says it (the last column but
    the action), by name."""
    body = html.split('id="waiting"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [
            " ".join(re.sub(r"<[^>]+>", " ", c).split())
            for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)
        ]
        found[cells[0]] = cells[5]
    return found


def book_buttons(html: str) -> list[dict[str, str]]:
    """The waiting table's booking forms: action, start and provider_id."""
    waiting = html.split('id="waiting"', 1)[1]
    return [
        {"action": action, "start": start, "provider_id": provider}
        for action, start, provider in re.findall(
            r'action="([^"]+/book)".*?name="start" value="([^"]+)".*?'
            r'name="provider_id" value="([^"]+)"',
            waiting,
            flags=re.S,
        )
    ]


WED_8 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # the first consultation time: 12 h notice


def test_each_waiting_patient_sees_the_earliest_open_time(app, client, schedule, login, booker):
    """However time comes free (a booking moved, time off taken back), the waiting table
    shows the first time patients could book now for each wish, and one click books it."""
    patel, brennan = schedule["providers"]
    types, p = schedule["types"], schedule["patients"]
    add_entry(app, p[10], types["consultation"], patel, days_ago=3)
    add_entry(app, p[11], types["consultation"], None, days_ago=2)
    add_entry(app, p[12], types["phone_check_in"], brennan, days_ago=1)
    book(app, booker, p[0], patel, WED_8)  # 08:00-08:45, 15 min after: 09:00 is next
    login("front_desk")

    shown = earliest(client.get(PAGE).get_data(as_text=True))
    assert shown == {
        name(app, p[10]): "Book Wed Nov 25, 2026 9:00 AM with Dr. Anika Patel for "
        f"{name(app, p[10])} Main Street",
        name(app, p[11]): "Book Wed Nov 25, 2026 8:00 AM with Dr. Thomas Brennan for "
        f"{name(app, p[11])} Main Street",
        # a phone check-in needs an hour's notice: Tue 11:00 in New York
        name(app, p[12]): "Book Tue Nov 24, 2026 11:00 AM with Dr. Thomas Brennan for "
        f"{name(app, p[12])} Main Street",
    }

    # Time off over Patel's Wednesday and Thursday: his earliest moves to Friday...
    with app.app_context():
        off = TimeOff(
            provider_id=patel, start_at=WED_8, end_at=WED_8 + timedelta(days=2), reason=""
        )
        db.session.add(off)
        db.session.commit()
        off_id = off.id
    shown = earliest(client.get(PAGE).get_data(as_text=True))
    assert shown[name(app, p[10])].startswith("Book Fri Nov 27, 2026 8:00 AM with Dr. Anika Patel")
    # ... and taking it back offers Wednesday again: capacity no cancellation freed.
    with app.app_context():
        db.session.delete(db.session.get(TimeOff, off_id))
        db.session.commit()
    html = client.get(PAGE).get_data(as_text=True)
    assert earliest(html)[name(app, p[10])].startswith("Book Wed Nov 25, 2026 9:00 AM")
    for url in urls(html):
        assert not any(name(app, patient_id) in url for patient_id in p[10:13])

    # The button books that time for that patient.
    button = next(b for b in book_buttons(html) if b["provider_id"] == str(patel))
    assert datetime.fromisoformat(button["start"]) == WED_8 + timedelta(hours=1)
    response = client.post(button["action"], data=button)
    assert response.status_code == 302
    with app.app_context():
        booked = db.session.scalars(select(Appointment).filter_by(patient_id=p[10])).one()
        assert (booked.provider_id, booked.start_at) == (patel, WED_8 + timedelta(hours=1))
    html = client.get(PAGE).get_data(as_text=True)
    assert name(app, p[10]) not in earliest(html)
    assert earliest(html)[name(app, p[11])].startswith("Book Wed Nov 25, 2026 8:00 AM")


def test_when_nothing_is_open_the_table_says_why(app, client, schedule, login):
    patel, brennan = schedule["providers"]
    types, p = schedule["types"], schedule["patients"]
    add_entry(app, p[10], types["consultation"], patel)
    add_entry(app, p[11], types["procedure"], brennan)
    add_entry(app, p[12], types["post_procedure_visit"], brennan)
    with app.app_context():
        # Patel is away for longer than the consultation's 90-day horizon.
        db.session.add(
            TimeOff(
                provider_id=patel,
                start_at=FIXED_NOW,
                end_at=FIXED_NOW + timedelta(days=91),
                reason="",
            )
        )
        db.session.get(AppointmentType, types["procedure"]).active = False
        db.session.get(Provider, brennan).active = False
        db.session.commit()
    login("nurse")
    html = client.get(PAGE).get_data(as_text=True)
    assert earliest(html) == {
        name(app, p[10]): "Nothing open in the next 90 days.",
        name(app, p[11]): "This kind of visit is no longer booked.",
        name(app, p[12]): "Dr. Thomas Brennan no longer takes appointments.",
    }
    assert book_buttons(html) == []


def test_the_last_day_of_the_horizon_counts(app, schedule, monkeypatch):
    """The horizon is inclusive (as in the slot search): an opening exactly at its end is
    found, through windows that double in length."""
    patel = schedule["providers"][0]
    windows = []
    search = waitlist_services.services.search_slots

    def recording(appointment_type, start, end, **kwargs):
        windows.append(end - start)
        return search(appointment_type, start, end, **kwargs)

    monkeypatch.setattr(waitlist_services.services, "search_slots", recording)
    with app.app_context():
        consultation = db.session.get(AppointmentType, schedule["types"]["consultation"])
        consultation.horizon_days = 30
        last = FIXED_NOW + timedelta(days=30)  # Thu Dec 24, 10:00 in New York
        db.session.add(TimeOff(provider_id=patel, start_at=FIXED_NOW, end_at=last, reason=""))
        db.session.commit()
        waiting = WaitlistEntry(
            id=1, patient_id=schedule["patients"][10], appointment_type_id=consultation.id
        )
        waiting.appointment_type, waiting.provider_id = consultation, patel
        waiting.provider = db.session.get(Provider, patel)
        found = waitlist_services.earliest_open([waiting], FIXED_NOW)[1]
        assert found is not None and found.start == last
        assert windows == [timedelta(days=14), timedelta(days=16, minutes=1)]
        consultation.horizon_days = 29
        assert waitlist_services.earliest_open([waiting], FIXED_NOW)[1] is None
        db.session.rollback()


def test_patients_waiting_for_the_same_thing_share_one_search(
    app, client, schedule, login, booker, monkeypatch
):
    """A kind of visit is searched once per provider: a wish for any provider takes the
    earliest of the providers' searches, which the wishes for one provider share."""
    patel, brennan = schedule["providers"]
    types, p = schedule["types"], schedule["patients"]
    for patient in p[10:16]:
        add_entry(app, patient, types["consultation"])
    add_entry(app, p[16], types["consultation"], patel)
    add_entry(app, p[17], types["consultation"], brennan)
    add_entry(app, p[18], types["phone_check_in"], brennan)
    searched = []
    search = waitlist_services.services.search_slots

    def counting(appointment_type, start, end, **kwargs):
        searched.append((appointment_type.code, kwargs["provider"].id))
        return search(appointment_type, start, end, **kwargs)

    monkeypatch.setattr(waitlist_services.services, "search_slots", counting)
    book(app, booker, p[0], patel, WED_8)  # Patel's first consultation time taken
    login("front_desk")
    html = client.get(PAGE).get_data(as_text=True)
    assert len(book_buttons(html)) == 9
    # each found a time in its first window
    assert sorted(searched) == [
        ("consultation", patel),
        ("consultation", brennan),
        ("phone_check_in", brennan),
    ]
    shown = earliest(html)
    for patient in p[10:16]:  # any provider: Brennan's 8:00 comes before Patel's 9:00
        assert shown[name(app, patient)].startswith("Book Wed Nov 25, 2026 8:00 AM with Dr. Thomas")
    assert shown[name(app, p[16])].startswith("Book Wed Nov 25, 2026 9:00 AM with Dr. Anika")


FRI_DEC_4_9 = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def test_a_patient_booked_ahead_is_moved_earlier_not_booked_twice(
    app, client, schedule, login, booker
):
    """Waiting for an earlier time while a visit is booked: the page says so, offers only
    earlier times, and taking one moves the visit (one appointment, its old time freed for
    the next patient)."""
    patel, brennan = schedule["providers"]
    consultation, p = schedule["types"]["consultation"], schedule["patients"]
    ahead = book(app, booker, p[10], brennan, FRI_DEC_4_9)
    book(app, booker, p[10], patel, WED_8, type_code="phone_check_in")  # another kind: no matter
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))  # Thursday, freed
    add_entry(app, p[10], consultation, days_ago=2)
    add_entry(app, p[11], consultation, days_ago=1)
    login("front_desk")

    html = client.get(PAGE).get_data(as_text=True)
    mover = earliest(html)[name(app, p[10])]
    assert mover == (
        "Booked Fri Dec 4, 2026 9:00 AM with Dr. Thomas Brennan Move to Wed Nov 25, 2026 "
        f"8:00 AM with Dr. Thomas Brennan for {name(app, p[10])} Main Street"
    )  # any provider: Patel's 8:00 is taken by the phone check-in
    # The cancelled Thursday slot is earlier too: offered to both, as a move for the first.
    assert offers(html) == [
        f"{name(app, p[10])} (moves their Fri Dec 4 visit)",
        name(app, p[11]),
    ]

    button = book_buttons(html)[0]
    response = client.post(button["action"], data=button, follow_redirects=True)
    assert (
        "Moved earlier: New-patient consultation, Wed Nov 25, 8:00 AM with Dr. Thomas Brennan "
        "(was Fri Dec 4, 9:00 AM). Let the patient know."
    ) in response.get_data(as_text=True)
    with app.app_context():
        kept = db.session.scalars(
            select(Appointment).where(
                Appointment.patient_id == p[10],
                Appointment.appointment_type_id == consultation,
                Appointment.status == AppointmentStatus.BOOKED,
            )
        ).all()
        assert [(a.id, a.provider_id, a.start_at, a.sequence) for a in kept] == [
            (ahead, brennan, WED_8, 1)
        ]
        waiting = db.session.scalars(select(WaitlistEntry).filter_by(patient_id=p[10])).one()
        assert (waiting.status, waiting.appointment_id) == ("booked", ahead)
    # Friday's time, given up by the move, is offered to the next patient.
    html = client.get(PAGE).get_data(as_text=True)
    assert any(row.startswith("Fri Dec 4, 2026 9:00 AM") for row in freed_rows(html))


def test_only_earlier_times_are_offered_to_a_patient_booked_ahead(
    app, client, schedule, login, booker
):
    patel = schedule["providers"][0]
    consultation, p = schedule["types"]["consultation"], schedule["patients"]
    book(app, booker, p[10], patel, WED_8)  # the first time there is
    entry_id = add_entry(app, p[10], consultation)
    cancel(app, booker, book(app, booker, p[0], patel, SLOT))  # Thursday: later than theirs
    login("nurse")

    html = client.get(PAGE).get_data(as_text=True)
    assert earliest(html)[name(app, p[10])] == (
        "Booked Wed Nov 25, 2026 8:00 AM with Dr. Anika Patel Nothing earlier is open."
    )
    assert offers(html) == [] and book_buttons(html) == []
    # A stale or forged form for a later time moves nothing and books nothing.
    response = client.post(
        f"{PAGE}/{entry_id}/book",
        data={"start": SLOT.isoformat(), "provider_id": str(patel)},
        follow_redirects=True,
    )
    assert "booked for that time or earlier already" in response.get_data(as_text=True)
    assert entry(app, entry_id).status == "waiting"
    with app.app_context():
        mine = db.session.scalars(select(Appointment).filter_by(patient_id=p[10])).all()
        assert [(a.start_at, a.status) for a in mine] == [(WED_8, AppointmentStatus.BOOKED)]
