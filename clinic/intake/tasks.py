"""Intake side effects, run by Celery after the request is committed. Arguments are ids."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app

from clinic import email
from clinic.extensions import db
from clinic.intake import drafts, emails
from clinic.intake.models import ConsultationRequest
from clinic.models import utcnow

logger = logging.getLogger(__name__)

DRAFT_MAX_IDLE = timedelta(hours=24)


@shared_task(name="intake.alert_staff", bind=True, acks_late=True)
def alert_staff(self, request_id: int) -> str:
    """Tell staff a red-flag intake is waiting, with no patient details in the message."""
    request = db.session.get(ConsultationRequest, request_id)
    if request is None or request.triage == "routine":
        return "skipped"
    return email.deliver(
        self, lambda: emails.staff_alert(request, current_app.config["STAFF_ALERT_EMAIL"])
    )


@shared_task(name="intake.purge_stale_drafts")
def purge_stale_drafts() -> int:
    """Delete intake drafts idle for a day."""
    count = drafts.purge_stale_drafts(utcnow(), DRAFT_MAX_IDLE)
    db.session.commit()
    logger.info("purged %d stale intake drafts", count)
    return count
