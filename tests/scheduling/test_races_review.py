"""Races between changes of one appointment, waitlist entries and Idempotency-Keys.

Each test runs two (or more) transactions at once, each in its own thread with its own app
context and connection. Where the outcome depends on who waits for whom, the first
transaction holds its row lock until the second is seen waiting on a lock in PostgreSQL
(pg_stat_activity), so the interleaving is forced, not left to timing.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import datetime
from itertools import combinations
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, select, text

from clinic.errors import DomainError
from clinic.extensions import db
from clinic.notifications.models import Notification
from clinic.scheduling import services
from clinic.scheduling import waitlist as waitlist_services
from clinic.scheduling.models import Appointment, AppointmentStatus, WaitlistEntry
from tests.conftest import FIXED_NOW

NY = ZoneInfo("America/New_York")
BOOK = "/api/v1/appointments"
MOVED_TO = datetime(2026, 11, 30, 14, tzinfo=NY)


def _staff(app, make_staff):
    from clinic.models import StaffUser

    user_id = make_staff("front_desk", "desk-races@clinic.test")
    return lambda: db.session.get(StaffUser, user_id)


def _booked(app, schedule, patient_index=0, start=datetime(2026, 11, 30, 8, tzinfo=NY)) -> int:
    """A consultation booked by staff (who may book inside the notice period)."""
    from clinic.models import Patient, StaffUser
    from clinic.scheduling.models import AppointmentType, Provider

    with app.app_context():
        appointment = services.book_appointment(
            db.session.get(Patient, schedule["patients"][patient_index]),
            db.session.get(AppointmentType, schedule["types"]["consultation"]),
            db.session.get(Provider, schedule["providers"][0]),
            start,
            now=FIXED_NOW,
            actor=db.session.scalars(select(StaffUser)).first(),
            source="staff",
        )
        db.session.commit()
        return appointment.id


def _waiting_on_a_lock(app, at_least: int = 1) -> bool:
    """Whether (at least this many) transactions on the test database wait on a lock."""
    with app.app_context():
        waiting = db.session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )
        return waiting >= at_least


def _one_waits_for_the_other(app, appointment_id: int, first, second) -> dict:
    """``first`` changes the appointment and keeps its transaction open until ``second``
    (which read the appointment before ``first`` committed) waits on a lock or is done; then
    both commit. Each returns None, or the exception its service raised."""
    first_flushed = threading.Event()
    second_done = threading.Event()
    results: dict = {}

    def run_first():
        with app.app_context():
            appointment = db.session.get(Appointment, appointment_id)
            try:
                first(appointment)
            except Exception as exc:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                results["first"] = exc
                first_flushed.set()
                return
            first_flushed.set()
            deadline = time.monotonic() + 20
            while not second_done.is_set() and not _waiting_on_a_lock(app):
                assert time.monotonic() < deadline, "the second change never waited"
            db.session.commit()
            results["first"] = None
            db.session.remove()

    def run_second():
        with app.app_context():
            appointment = db.session.get(Appointment, appointment_id)  # before first commits
            first_flushed.wait(20)
            try:
                second(appointment)
            except Exception as exc:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                results["second"] = exc
            else:
                db.session.commit()
                results["second"] = None
            finally:
                second_done.set()
                db.session.remove()

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(results) == {"first", "second"}, results
    return results


def _open_messages(appointment_id: int) -> list[tuple[str, str]]:
    """What is still to go for the appointment, and its cancellation unless cancelled: a Celery
    worker left running by an earlier test may already have sent or skipped it."""
    return [
        (row.kind, row.status)
        for row in db.session.scalars(
            select(Notification).where(
                Notification.cause_type == "appointment",
                Notification.cause_id == appointment_id,
                (Notification.status.in_(("pending", "sending")))
                | ((Notification.kind == "cancellation") & (Notification.status != "cancelled")),
            )
        )
    ]


def test_reschedule_waiting_for_a_cancel_does_not_move_the_cancelled_appointment(
    app, schedule, make_staff
):
    staff = _staff(app, make_staff)
    appointment_id = _booked(app, schedule)

    def cancel(a):
        services.cancel(a, "Patient called", now=FIXED_NOW, actor=staff())

    def move(a):
        services.reschedule(a, MOVED_TO, now=FIXED_NOW, actor=staff())

    results = _one_waits_for_the_other(app, appointment_id, cancel, move)
    assert results["first"] is None
    assert isinstance(results["second"], DomainError), results
    with app.app_context():
        row = db.session.get(Appointment, appointment_id)
        assert row.status == AppointmentStatus.CANCELLED
        assert row.start_at == datetime(2026, 11, 30, 8, tzinfo=NY)
        assert row.sequence == 1
        # nothing may go out for a cancelled appointment but the cancellation itself
        assert [kind for kind, _ in _open_messages(appointment_id)] == ["cancellation"]


def test_cancel_waiting_for_a_reschedule_bumps_the_sequence_again(app, schedule, make_staff):
    """Moved then cancelled: the cancellation is a newer calendar revision than the move."""
    staff = _staff(app, make_staff)
    appointment_id = _booked(app, schedule)

    def move(a):
        services.reschedule(a, MOVED_TO, now=FIXED_NOW, actor=staff())

    def cancel(a):
        services.cancel(a, "Patient called", now=FIXED_NOW, actor=staff())

    results = _one_waits_for_the_other(app, appointment_id, move, cancel)
    assert results == {"first": None, "second": None}
    with app.app_context():
        row = db.session.get(Appointment, appointment_id)
        assert row.status == AppointmentStatus.CANCELLED
        assert row.start_at == MOVED_TO
        assert row.sequence == 2, "the cancellation must not reuse the move's SEQUENCE"
        assert [kind for kind, _ in _open_messages(appointment_id)] == ["cancellation"]


def test_arrived_waiting_for_a_cancel_is_refused(app, schedule, make_staff):
    """cancelled -> arrived is not in TRANSITIONS, whoever read the row first."""
    staff = _staff(app, make_staff)
    appointment_id = _booked(app, schedule, start=datetime(2026, 11, 24, 11, tzinfo=NY))

    def cancel(a):
        services.cancel(a, "Patient called", now=FIXED_NOW, actor=staff())

    def arrived(a):
        services.change_status(a, AppointmentStatus.ARRIVED, now=FIXED_NOW, actor=staff())

    results = _one_waits_for_the_other(app, appointment_id, cancel, arrived)
    assert results["first"] is None
    assert isinstance(results["second"], DomainError), results
    with app.app_context():
        assert db.session.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED


def test_two_reschedules_at_once_both_count(app, schedule, make_staff):
    """Two moves of one appointment: each is its own revision (and its own update email)."""
    staff = _staff(app, make_staff)
    appointment_id = _booked(app, schedule)

    def move(a):
        services.reschedule(a, MOVED_TO, now=FIXED_NOW, actor=staff())

    def move_again(a):
        services.reschedule(a, datetime(2026, 11, 30, 15, tzinfo=NY), now=FIXED_NOW, actor=staff())

    results = _one_waits_for_the_other(app, appointment_id, move, move_again)
    assert results == {"first": None, "second": None}, results
    with app.app_context():
        row = db.session.get(Appointment, appointment_id)
        assert row.start_at == datetime(2026, 11, 30, 15, tzinfo=NY)
        assert row.sequence == 2
        updates = db.session.scalars(
            select(Notification.revision).where(
                Notification.cause_id == appointment_id, Notification.kind == "update"
            )
        ).all()
        assert sorted(updates) == [1, 2]


def test_the_same_move_twice_at_once_is_one_revision(app, schedule, make_staff):
    """A double-submitted move: the second waits on the row lock, then finds the appointment
    already there and changes nothing (no second revision, no second update email)."""
    staff = _staff(app, make_staff)
    appointment_id = _booked(app, schedule)

    def move(a):
        services.reschedule(a, MOVED_TO, now=FIXED_NOW, actor=staff())

    results = _one_waits_for_the_other(app, appointment_id, move, move)
    assert results == {"first": None, "second": None}, results
    with app.app_context():
        row = db.session.get(Appointment, appointment_id)
        assert (row.start_at, row.sequence) == (MOVED_TO, 1)
        updates = db.session.scalars(
            select(Notification.revision).where(
                Notification.cause_id == appointment_id, Notification.kind == "update"
            )
        ).all()
        assert updates == [1]


def test_reschedule_and_cancel_over_the_api_at_the_same_moment(app, schedule, staff_token):
    """Five rounds of a staff move and a cancel sent at once: the result is always one of the
    two orders, never a moved cancelled appointment with messages still to go."""
    headers = staff_token("front_desk")
    for round_ in range(5):
        appointment_id = _booked(app, schedule, patient_index=round_)
        barrier = threading.Barrier(2)
        codes = {}

        def call(name, url, body, appointment_id=appointment_id, barrier=barrier, codes=codes):
            client = app.test_client()
            barrier.wait()
            codes[name] = client.post(
                f"{BOOK}/{appointment_id}/{url}", headers=headers, json=body
            ).status_code

        threads = [
            threading.Thread(
                target=call, args=("move", "reschedule", {"start": MOVED_TO.isoformat()})
            ),
            threading.Thread(target=call, args=("cancel", "cancel", {"reason": "Called in"})),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with app.app_context():
            row = db.session.get(Appointment, appointment_id)
            assert codes["cancel"] == 200 and row.status == AppointmentStatus.CANCELLED
            if codes["move"] == 200:  # moved, then cancelled
                assert row.start_at == MOVED_TO and row.sequence == 2, (round_, codes)
            else:  # cancelled, then the move refused
                assert codes["move"] == 409, (round_, codes)
                assert row.start_at != MOVED_TO and row.sequence == 1, (round_, codes)
            assert [kind for kind, _ in _open_messages(appointment_id)] == ["cancellation"]
            # free the time for the next round
            db.session.execute(
                text("UPDATE appointment SET status = 'entered-in-error' WHERE id = :id"),
                {"id": appointment_id},
            )
            db.session.commit()


@contextmanager
def _deadlock_victims(app):
    """The statements PostgreSQL fails with deadlock_detected (40P01) while the block runs."""
    with app.app_context():
        engine = db.engine
    victims: list[str] = []

    def seen(context):
        if getattr(context.original_exception, "sqlstate", None) == "40P01":
            victims.append(context.statement)

    event.listen(engine, "handle_error", seen)
    try:
        yield victims
    finally:
        event.remove(engine, "handle_error", seen)


def _overlaps(appointments) -> list[tuple[int, int]]:
    """The pairs of these appointments whose occupied spans (buffers included) meet."""
    return [
        (a.id, b.id)
        for a, b in combinations(appointments, 2)
        if a.provider_id == b.provider_id
        and a.occupied_start < b.occupied_end
        and b.occupied_start < a.occupied_end
    ]


def test_two_moves_deadlocked_over_one_time_get_a_200_and_a_409(
    app, schedule, make_staff, staff_token
):
    """Two staff moves into one free time while a booking of it is still open: each move's
    update waits on that booking in the exclusion constraint. The booking rolls back (only once
    both are seen waiting: forced, not left to timing), each move then finds the other's new
    row and waits on it, and PostgreSQL breaks the deadlock by failing one (40P01). That one is
    a 409, never a 500; the other gets the time. Three rounds, a deadlock in each."""
    from clinic.models import Patient
    from clinic.scheduling.models import AppointmentType, Provider

    staff = _staff(app, make_staff)
    headers = staff_token("front_desk")
    with app.app_context():
        # uncapped: a capped type's per-type lock would queue the three up instead
        db.session.get(AppointmentType, schedule["types"]["consultation"]).daily_cap = None
        db.session.commit()
    for round_ in range(3):
        moving = [
            _booked(app, schedule, 0, start=datetime(2026, 11, 30, 8, tzinfo=NY)),
            _booked(app, schedule, 1, start=datetime(2026, 11, 30, 9, tzinfo=NY)),
        ]
        barrier = threading.Barrier(2)
        answers: dict = {}

        def move(appointment_id, barrier=barrier, answers=answers):
            client = app.test_client()
            barrier.wait()
            try:
                answers[appointment_id] = client.post(
                    f"{BOOK}/{appointment_id}/reschedule",
                    headers=headers,
                    json={"start": MOVED_TO.isoformat()},
                ).status_code
            except Exception as exc:  # noqa: BLE001 - a 500, raised as the app is TESTING
                answers[appointment_id] = repr(exc)[:300]

        threads = [threading.Thread(target=move, args=(i,)) for i in moving]
        with _deadlock_victims(app) as victims, app.app_context():
            services.book_appointment(
                db.session.get(Patient, schedule["patients"][2]),
                db.session.get(AppointmentType, schedule["types"]["consultation"]),
                db.session.get(Provider, schedule["providers"][0]),
                MOVED_TO,
                now=FIXED_NOW,
                actor=staff(),
                source="staff",
            )  # flushed, not committed: MOVED_TO is taken in the constraint's index
            for t in threads:
                t.start()
            deadline = time.monotonic() + 20
            while not _waiting_on_a_lock(app, at_least=2):
                assert time.monotonic() < deadline, "the two moves never waited"
            db.session.rollback()
            for t in threads:
                t.join(60)
        assert sorted(answers.values(), key=str) == [200, 409], (round_, answers)
        assert len(victims) == 1, (round_, victims)
        with app.app_context():
            active = db.session.scalars(
                select(Appointment).where(Appointment.status == AppointmentStatus.BOOKED)
            ).all()
            assert _overlaps(active) == []
            [moved] = [a for a in active if a.start_at == MOVED_TO]
            assert answers[moved.id] == 200 and len(active) == 2, (round_, answers)
            # free the times for the next round
            db.session.execute(text("UPDATE appointment SET status = 'entered-in-error'"))
            db.session.commit()


# -- the waitlist -------------------------------------------------------------------------------


def test_adding_the_same_patient_to_the_waitlist_twice_at_once(app, schedule, make_staff):
    """A double-submitted form: one entry, and the second gets the duplicate message."""
    staff = _staff(app, make_staff)
    barrier = threading.Barrier(2)
    lock = threading.Lock()
    progress = {"added": 0, "done": 0}
    outcomes: list = []

    def add():
        with app.app_context():
            barrier.wait()
            try:
                waitlist_services.add_entry(
                    schedule["patients"][0],
                    schedule["types"]["consultation"],
                    None,
                    "",
                    actor=staff(),
                    now=FIXED_NOW,
                )
            except Exception as exc:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                outcomes.append(type(exc).__name__)
            else:
                with lock:
                    progress["added"] += 1
                # keep the transaction open until the other one has added too, waits on a
                # lock, or is over
                deadline = time.monotonic() + 20
                while progress["added"] < 2 and not progress["done"]:
                    if _waiting_on_a_lock(app):
                        break
                    assert time.monotonic() < deadline
                db.session.commit()
                outcomes.append("added")
            finally:
                with lock:
                    progress["done"] += 1
                db.session.remove()

    threads = [threading.Thread(target=add) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["ValidationFailed", "added"], outcomes
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WaitlistEntry)) == 1


# -- Idempotency-Key ----------------------------------------------------------------------------


def _same_key_race(app, body, n=4) -> list:
    barrier = threading.Barrier(n)
    answers: list = [None] * n

    def run(i):
        client = app.test_client()
        barrier.wait()
        response = client.post(BOOK, json=body, headers={"Idempotency-Key": "same-key-1"})
        answers[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_same_idempotency_key_at_once_on_postgres(app, schedule, booking_token):
    body = {
        "booking_token": booking_token(schedule["patients"][0]),
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T09:00:00-05:00",
    }
    answers = _same_key_race(app, body)
    assert {code for code, _ in answers} == {201}, answers
    assert len({str(json) for _, json in answers}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_same_idempotency_key_at_once_on_sqlite(sqlite_app):
    """A retry waiting for the first answer must not hold SQLite's write lock while it waits
    (every transaction there begins IMMEDIATE), or the first request can't finish."""
    from clinic.tokens import make_token

    schedule = sqlite_app.schedule
    with sqlite_app.test_request_context():
        token = make_token("booking", {"request_id": None, "patient_id": schedule["patients"][0]})
    body = {
        "booking_token": token,
        "appointment_type": "consultation",
        "provider_id": schedule["providers"][0],
        "start": "2026-11-25T09:00:00-05:00",
    }
    started = time.monotonic()
    answers = _same_key_race(sqlite_app, body)
    assert {code for code, _ in answers} == {201}, answers
    assert len({str(json) for _, json in answers}) == 1
    assert time.monotonic() - started < 5, "the retries held the first request up"
    with sqlite_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 1
