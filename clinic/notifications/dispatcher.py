"""One dispatcher pass: release stale claims, claim due rows, commit, hand ids to the send task.

Claiming is one statement: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
RETURNING id`` on PostgreSQL, so two dispatchers never claim the same row; on SQLite the same
UPDATE ... RETURNING runs under the write lock every transaction takes (``BEGIN IMMEDIATE``).
The due rows come from a partial index holding pending rows only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, exists, not_, or_, select, update

from clinic import http
from clinic.celery_app import enqueue_each
from clinic.extensions import db
from clinic.followup.models import AutomationPause
from clinic.notifications import schedules
from clinic.notifications.models import DispatcherRun, Notification, Status

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass
class Pass:
    claimed: int = 0
    released: int = 0
    enqueue_failed: int = 0


def claim_timeout() -> timedelta:
    """How long a claim may stay unsent before it is released (a lost task, a killed worker)."""
    config = current_app.config
    return timedelta(
        seconds=config.get("NOTIFY_CLAIM_TIMEOUT_SECONDS")
        or max(300, 5 * config["DISPATCH_INTERVAL_SECONDS"])
    )


def release_stale(now: datetime) -> int:
    """Put claims older than the timeout back to pending.

    Rows someone holds are skipped, never waited for: a send in progress holds its row (and
    will mark it sent), and so does a reschedule or cancel that is re-timing it. Waiting would
    let this pass and such a transaction lock each other's rows in opposite orders.
    """
    stale = (
        select(Notification.id)
        .where(
            Notification.status == Status.SENDING, Notification.claimed_at < now - claim_timeout()
        )
        .with_for_update(skip_locked=True)
    )
    result = db.session.execute(
        update(Notification)
        .where(Notification.id.in_(stale), Notification.status == Status.SENDING)
        .values(status=Status.PENDING, claimed_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def claim(now: datetime, limit: int = BATCH) -> list[int]:
    """Mark up to ``limit`` due rows as sending and return their ids (oldest due first)."""
    config = current_app.config
    routine_ok = schedules.in_send_hours(now, http.clinic_tz(), config["NOTIFY_SEND_HOURS"])
    paused = exists().where(
        AutomationPause.patient_id == Notification.patient_id,
        AutomationPause.acknowledged_at.is_(None),
    )
    sendable = not_(Notification.routine)
    if routine_ok:
        sendable = or_(sendable, not_(paused))
    due = (
        select(Notification.id)
        .where(and_(Notification.status == Status.PENDING, Notification.due_at <= now, sendable))
        .order_by(Notification.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = db.session.execute(
        update(Notification)
        .where(Notification.id.in_(due.scalar_subquery()))
        .values(status=Status.SENDING, claimed_at=now, updated_at=now)
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    )
    return [row[0] for row in result]


def _heartbeat(now: datetime, claimed: int, released: int) -> None:
    """Record the pass (an upsert: two dispatchers may finish at once)."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    values = {"last_run_at": now, "claimed": claimed, "released": released}
    statement = insert(DispatcherRun).values(id=1, **values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[DispatcherRun.id],
            set_=values,
            where=DispatcherRun.last_run_at < statement.excluded.last_run_at,
        )
    )


def dispatch(now: datetime, *, batch: int = BATCH) -> Pass:
    """One pass: everything due now is claimed and handed to the send task, batch by batch."""
    result = Pass()
    result.released = release_stale(now)
    db.session.commit()
    while True:
        ids = claim(now, batch)
        db.session.commit()  # the claim is durable before any task can see the ids
        result.claimed += len(ids)
        # One round trip to the broker for the batch; a row whose task could not be handed
        # over stays claimed, is released after the claim timeout, and is sent then.
        for (notification_id,), error in enqueue_each(_send_task(), [(i,) for i in ids]):
            result.enqueue_failed += 1
            logger.error("could not enqueue notification %s: %s", notification_id, error)
        if len(ids) < batch:
            break
    _heartbeat(now, result.claimed, result.released)
    db.session.commit()
    if result.claimed or result.released:
        logger.info("dispatcher claimed %d, released %d", result.claimed, result.released)
    return result


def _send_task():
    from clinic.notifications.tasks import send

    return send


def last_run() -> datetime | None:
    run = db.session.get(DispatcherRun, 1)
    return run.last_run_at if run else None


def is_stale(now: datetime) -> bool:
    """True when the dispatcher has not run for three intervals (staff see a banner)."""
    last = last_run()
    interval = timedelta(seconds=current_app.config["DISPATCH_INTERVAL_SECONDS"])
    return last is None or now - last > 3 * interval
