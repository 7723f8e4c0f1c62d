"""Idempotency-Key records: how long a key counts, and the purge of expired ones.

The records are written and replayed by ``clinic.api.idempotency``; each keeps the first
answer to a POST, and a booking's answer holds the patient's manage link, so none is kept
longer than a retry can need it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from clinic.extensions import db
from clinic.scheduling.models import IdempotencyRecord

# The IETF httpapi Idempotency-Key draft's usual expiry; a retry after it is a new request.
RETENTION = timedelta(hours=24)
PURGE_BATCH = 500


def expired(created_at: datetime, now: datetime) -> bool:
    """True when a key claimed at ``created_at`` no longer counts (a retry is a new request)."""
    return created_at < now - RETENTION


def purge_expired(now: datetime, *, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` expired records, oldest first; the caller commits each batch.

    An expired record still "in progress" is one whose request died a day ago (none runs for
    more than a few minutes: see ``clinic.api.idempotency.ABANDONED_AFTER``). The rows are
    locked as they are found (skipping any a retry is taking over at that moment), and their
    age is checked again as they are deleted.
    """
    cutoff = now - RETENTION
    # Two statements: PostgreSQL plans ``DELETE ... WHERE id IN (SELECT ... LIMIT n)`` as a
    # scan of the whole table, where a list of ids is found through the primary key.
    ids = db.session.scalars(
        select(IdempotencyRecord.id)
        .where(IdempotencyRecord.created_at < cutoff)
        .order_by(IdempotencyRecord.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        return 0
    result = db.session.execute(
        delete(IdempotencyRecord)
        .where(IdempotencyRecord.id.in_(ids), IdempotencyRecord.created_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
