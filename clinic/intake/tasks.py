"""Intake housekeeping run by Celery beat. (The staff alert about a red-flag intake is a
message row: ``notifications.services.request_flagged``.)"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from clinic.extensions import db
from clinic.intake import drafts
from clinic.models import utcnow

logger = logging.getLogger(__name__)

DRAFT_MAX_IDLE = timedelta(hours=24)


@shared_task(name="intake.purge_stale_drafts")
def purge_stale_drafts() -> int:
    """Delete intake drafts idle for a day."""
    count = drafts.purge_stale_drafts(utcnow(), DRAFT_MAX_IDLE)
    db.session.commit()
    logger.info("purged %d stale intake drafts", count)
    return count
