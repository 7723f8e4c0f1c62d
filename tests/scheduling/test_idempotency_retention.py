"""Idempotency-Key records expire after a day: the purge, and a retry after expiry."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.models import utcnow
from clinic.scheduling.models import Appointment, IdempotencyRecord
from tests.conftest import FIXED_NOW
from tests.notifications.conftest import poll
from tests.scheduling.conftest import patient_booking

BOOK = "/api/v1/appointments"
PURGE = "scheduling.purge_idempotency_records"


def _record(key: str, created_at, status_code: int = 201) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        endpoint=f"POST {BOOK} {'0' * 32}",
        request_hash=hashlib.sha256(key.encode()).hexdigest(),
        status_code=status_code,
        body={"manage_url": f"http://clinic.test/appointments/{key}"} if status_code else {},
        created_at=created_at,
    )


def _add_records(app, now, **ages: tuple[timedelta, int]) -> None:
    """One record per key, created ``age`` before ``now``, with the status given (0: running)."""
    with app.app_context():
        db.session.add_all([_record(key, now - age, code) for key, (age, code) in ages.items()])
        db.session.commit()


def _keys(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(IdempotencyRecord.key)))


def _add_kinds_of_record(app, now, margin: timedelta = timedelta(minutes=1)) -> None:
    """Three records expired ``margin`` or more before ``now``, and ``KEPT``."""
    from clinic.api.idempotency import ABANDONED_AFTER, IN_PROGRESS
    from clinic.scheduling.idempotency_records import RETENTION

    _add_records(
        app,
        now,
        expired=(RETENTION + margin, 201),
        expired_422=(RETENTION + timedelta(days=3), 422),
        # its request died a day ago (none runs for longer than a few minutes)
        dead_a_day_ago=(RETENTION + margin, IN_PROGRESS),
        young=(RETENTION - margin, 201),
        running=(timedelta(0), IN_PROGRESS),
        running_abandoned=(ABANDONED_AFTER + timedelta(seconds=1), IN_PROGRESS),
    )


KEPT = {"young", "running", "running_abandoned"}


def test_the_purge_deletes_expired_records_and_keeps_young_and_running_ones(app):
    from clinic.scheduling import idempotency_records

    _add_kinds_of_record(app, FIXED_NOW, margin=timedelta(microseconds=1))
    _add_records(app, FIXED_NOW, just_a_day=(idempotency_records.RETENTION, 201))
    with app.app_context():
        assert idempotency_records.purge_expired(FIXED_NOW) == 3
        db.session.commit()
    assert _keys(app) == KEPT | {"just_a_day"}


def test_the_purge_task_deletes_batch_by_batch(app, monkeypatch):
    """Each batch is its own transaction, and the task goes on until none is left."""
    from clinic.scheduling import idempotency_records

    monkeypatch.setattr(idempotency_records, "PURGE_BATCH", 2)
    now = utcnow()  # the task's own clock
    _add_kinds_of_record(app, now)
    _add_records(app, now, **{f"old-{i}": (timedelta(days=2), 200) for i in range(4)})
    commits = []
    monkeypatch.setattr(db.session, "commit", _counting(db.session.commit, commits))
    assert app.extensions["celery"].tasks[PURGE]() == 7
    assert _keys(app) == KEPT
    assert len(commits) == 4  # 2 + 2 + 2 + 1 rows


def _counting(commit, calls: list):
    def counted():
        calls.append(1)
        return commit()

    return counted


def test_the_purge_runs_on_beat_and_in_a_real_worker(app, celery_worker):
    from clinic.schedule import beat_schedule

    [entry] = [e for e in beat_schedule(app.config).values() if e["task"] == PURGE]
    assert entry["schedule"] <= timedelta(hours=1)
    _add_kinds_of_record(app, utcnow())
    app.extensions["celery"].tasks[PURGE].apply_async()
    poll(lambda: _keys(app) == KEPT, message=f"left: {_keys(app) - KEPT}")


# -- a retry after expiry is a new request -----------------------------------------------------


def _expire(app, key: str, *, purge: bool) -> None:
    """A day and a second pass for ``key``, and the purge has run or not."""
    from clinic.scheduling import idempotency_records

    with app.app_context():
        record = db.session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == key)
        ).one()
        record.created_at -= idempotency_records.RETENTION + timedelta(seconds=1)
        db.session.flush()
        if purge:
            idempotency_records.purge_expired(utcnow())
        db.session.commit()


@pytest.mark.parametrize("purged", [False, True], ids=["before-the-purge", "after-the-purge"])
def test_a_retry_after_the_key_expired_is_a_new_request(
    app, client, schedule, booking_token, purged
):
    body = patient_booking(schedule, booking_token)
    headers = {"Idempotency-Key": "a-day-old-1"}
    first = client.post(BOOK, json=body, headers=headers)
    assert first.status_code == 201
    _expire(app, "a-day-old-1", purge=purged)
    # the same body runs again: its slot is its own booking's now
    again = client.post(BOOK, json=body, headers=headers)
    assert again.status_code == 409 and "Idempotent-Replayed" not in again.headers
    # another body is no mismatch: the key is free, and now holds this request's answer
    moved = dict(body, start="2026-11-25T10:00:00-05:00")
    _expire(app, "a-day-old-1", purge=purged)
    second = client.post(BOOK, json=moved, headers=headers)
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.get_json()["id"] != first.get_json()["id"]
    replay = client.post(BOOK, json=moved, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == second.get_json()
    assert client.post(BOOK, json=body, headers=headers).status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 2
        [record] = db.session.scalars(select(IdempotencyRecord)).all()
        assert first.get_json()["manage_url"] not in str(record.body)


def test_a_retry_taking_over_an_expired_key_as_the_purge_deletes_it_still_runs(
    app, client, schedule, booking_token, monkeypatch
):
    """The purge deletes the record between the retry's read and its take-over: the retry
    claims the key afresh (no "the first request failed" 409)."""
    from clinic.api import idempotency
    from clinic.scheduling import idempotency_records

    body = patient_booking(schedule, booking_token)
    headers = {"Idempotency-Key": "purged-meanwhile-1"}
    assert client.post(BOOK, json=body, headers=headers).status_code == 201
    _expire(app, "purged-meanwhile-1", purge=False)
    take_over = idempotency._take_over

    def purge_first(*args):
        assert idempotency_records.purge_expired(utcnow()) == 1
        db.session.commit()
        return take_over(*args)

    monkeypatch.setattr(idempotency, "_take_over", purge_first)
    moved = dict(body, start="2026-11-25T10:00:00-05:00")
    second = client.post(BOOK, json=moved, headers=headers)
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    monkeypatch.undo()
    replay = client.post(BOOK, json=moved, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == second.get_json()
