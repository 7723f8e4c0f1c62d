"""Notification tasks: the beat-driven dispatcher pass and the one send task. Ids only."""

from __future__ import annotations

from celery import shared_task

from clinic.models import utcnow
from clinic.notifications import dispatcher, sending


@shared_task(name="notifications.dispatch", ignore_result=True)
def dispatch() -> int:
    """Claim due messages and hand them to ``notifications.send``."""
    return dispatcher.dispatch(utcnow()).claimed


@shared_task(name="notifications.send", acks_late=True, ignore_result=True)
def send(notification_id: int) -> str:
    """Send one claimed message (a copy delivered twice finds it sent and does nothing)."""
    return sending.deliver(notification_id, now=utcnow())
