"""Races in the follow-up: recording a procedure, check-in submits, red flags and pauses.

Two transactions at once, each in its own thread with its own app context and connection.
The first keeps its transaction open until the second is seen waiting on a lock in
PostgreSQL (pg_stat_activity) or is done, so the interleaving is forced, not left to timing.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from clinic.extensions import db
from clinic.followup import checkin
from clinic.followup import services as followup
from clinic.followup.models import AutomationPause, CheckIn, Procedure, Timepoint
from clinic.models import Patient, StaffUser
from clinic.scheduling.models import Provider
from tests.conftest import FIXED_NOW
from tests.followup.test_checkin import ANSWERS, SCREEN_CLEAR, planned_links, screened


@pytest.fixture
def plan(app, make_request):
    request_id = make_request(now=FIXED_NOW - timedelta(days=15))
    return planned_links(app, request_id, date(2026, 11, 23))


def _waiting_on_a_lock() -> bool:
    return bool(
        db.session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )
    )


def _at_once(app, *actions, in_turn: bool = False) -> list[str]:
    """Run each action in its own thread and transaction, all started together (``in_turn``:
    each once the one before has done its work, uncommitted); an action that has done its work
    keeps its transaction open until every other one has done its own, waits on a lock, or is
    over. Each outcome: "ok" or the name of what it raised."""
    barrier = threading.Barrier(len(actions))
    turns = [threading.Event() for _ in actions]
    lock = threading.Lock()
    progress = {"worked": 0, "over": 0}
    outcomes: list[str] = []

    def others_stuck_or_through() -> bool:
        with app.app_context():
            return _waiting_on_a_lock()

    def run(i, action):
        with app.app_context():
            barrier.wait()
            if in_turn and i:
                assert turns[i - 1].wait(20)
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                outcomes.append(type(exc).__name__)
                turns[i].set()
            else:
                with lock:
                    progress["worked"] += 1
                turns[i].set()
                deadline = time.monotonic() + 20
                while progress["worked"] + progress["over"] < len(actions):
                    if others_stuck_or_through():
                        break
                    assert time.monotonic() < deadline, "no other action went anywhere"
                try:
                    db.session.commit()
                    outcomes.append("ok")
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    db.session.rollback()
                    outcomes.append(type(exc).__name__)
            finally:
                with lock:
                    progress["over"] += 1
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, action)) for i, action in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == len(actions), outcomes
    return sorted(outcomes)


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_recording_the_same_procedure_twice_at_once(app, plan):
    """A double-submitted form: one procedure and one follow-up plan, not two."""
    patient_id = plan["patient_id"]
    with app.app_context():
        provider_id = db.session.scalars(select(Provider.id)).first()

    def record():
        followup.record_procedure(
            db.session.get(Patient, patient_id),
            db.session.get(Provider, provider_id),
            date(2026, 11, 20),
            actor=None,
            now=FIXED_NOW,
        )

    assert _at_once(app, record, record) == ["ValidationFailed", "ok"]
    performed = Procedure.performed_on == date(2026, 11, 20)
    assert _count(app, Procedure, performed) == 1


def test_two_submits_of_the_same_checkin(app, plan):
    """Two browsers send the answers of one check-in at once: the first is kept, the second is
    told the check-in is closed (not silently written over the first)."""
    url = plan["url"]["FU-W6"]
    timepoint_id = plan["id"]["FU-W6"]
    screened(app.test_client(), url)

    def submit(back_pain):
        def action():
            checkin.submit_checkin(
                db.session.get(Timepoint, timepoint_id),
                {**ANSWERS, "nprs_back": back_pain},
                now=FIXED_NOW,
                client=None,
            )

        return action

    assert _at_once(app, submit("2"), submit("7")) == ["CheckInClosed", "ok"]
    with app.app_context():
        [row] = db.session.scalars(select(CheckIn)).all()
        assert row.scores["nprs_back"] in (2, 7)
        audits = db.session.scalar(
            text("SELECT count(*) FROM audit_event WHERE reason = 'check-in answered'")
        )
        assert audits == 1


def test_a_double_clicked_red_flag_screen(app, plan):
    """The emergency answer sent twice at once: one red flag, one pause, and the second click
    is told the check-in is stopped (it then shows the emergency page), never a 500."""
    timepoint_id = plan["id"]["FU-W6"]

    def screen():
        checkin.submit_red_flags(
            db.session.get(Timepoint, timepoint_id),
            {**SCREEN_CLEAR, "rf_bowel": "new"},
            now=FIXED_NOW,
            client=None,
        )

    assert _at_once(app, screen, screen) == ["CheckInStopped", "ok"]
    assert _count(app, AutomationPause, AutomationPause.acknowledged_at.is_(None)) == 1
    assert _count(app, CheckIn) == 1


def test_red_flags_from_two_checkins_of_one_patient_at_once(app, plan):
    """Two links of one patient answered with red flags at the same moment: both stored, one
    open pause (the second joins it), no unique-index error."""

    def screen(code):
        def action():
            checkin.submit_red_flags(
                db.session.get(Timepoint, plan["id"][code]),
                {**SCREEN_CLEAR, "rf_fever": "worsening"},
                now=FIXED_NOW,
                client=None,
            )

        return action

    assert _at_once(app, screen("FU-W6"), screen("FU-M3")) == ["ok", "ok"]
    assert _count(app, AutomationPause, AutomationPause.acknowledged_at.is_(None)) == 1
    assert _count(app, CheckIn) == 2


def test_a_red_flag_while_staff_acknowledge_the_last_one(app, plan, make_staff):
    """Staff acknowledge the week-6 red flag while the 3-month check-in raises a new one: the
    new red flag must leave automation paused (not hide inside the pause being closed)."""
    nurse_id = make_staff("nurse")
    screened(app.test_client(), plan["url"]["FU-W6"], rf_fever="worsening")
    with app.app_context():
        pause_id = db.session.scalar(select(AutomationPause.id))

    def acknowledge():
        # as the staff view does: the pause locked, then acknowledged
        pause = db.session.get(AutomationPause, pause_id, with_for_update=True)
        followup.acknowledge_pause(
            pause, actor=db.session.get(StaffUser, nurse_id), now=FIXED_NOW, note="called"
        )
        db.session.flush()

    new_flag_at = FIXED_NOW + timedelta(minutes=1)

    def red_flag():
        checkin.submit_red_flags(
            db.session.get(Timepoint, plan["id"]["FU-M3"]),
            {**SCREEN_CLEAR, "rf_bowel": "new"},
            now=new_flag_at,
            client=None,
        )

    # the acknowledgement first; it holds its lock until the check-in waits or is through
    assert _at_once(app, acknowledge, red_flag, in_turn=True) == ["ok", "ok"]
    with app.app_context():
        open_pauses = db.session.scalars(
            select(AutomationPause).where(AutomationPause.acknowledged_at.is_(None))
        ).all()
        new_row = db.session.scalars(select(CheckIn).where(CheckIn.triage == "emergency")).one()
        if db.session.get(AutomationPause, pause_id).checkin_id == new_row.id:
            pytest.fail("the new red flag joined the pause being acknowledged")
        assert [p.checkin_id for p in open_pauses] == [new_row.id]
        assert checkin.stopped_by(db.session.get(Timepoint, plan["id"]["FU-M3"])) is not None
