"""Scheduling housekeeping run by Celery beat."""

from __future__ import annotations

import logging

from celery import shared_task

from clinic.extensions import db
from clinic.models import utcnow
from clinic.scheduling import idempotency_records

logger = logging.getLogger(__name__)


@shared_task(name="scheduling.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Delete Idempotency-Key records older than a day, one committed batch at a time."""
    now, batch = utcnow(), idempotency_records.PURGE_BATCH
    count = 0
    while True:
        deleted = idempotency_records.purge_expired(now, limit=batch)
        db.session.commit()  # batch by batch: no long transaction, no rows locked for long
        count += deleted
        if deleted < batch:
            break
    logger.info("purged %d expired idempotency records", count)
    return count
