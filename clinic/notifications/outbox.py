"""Hand claimed message ids to the send task once the transaction that made them commits.

Services record ids in the session; nothing reaches the broker before the commit, and a
rollback forgets them. If the broker is down at that moment the rows stay claimed and the
dispatcher releases and re-sends them after the claim timeout: nothing is lost.
"""

from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.orm import Session

from clinic.extensions import db

logger = logging.getLogger(__name__)

_KEY = "notifications_after_commit"


def send_after_commit(notification_id: int) -> None:
    db.session().info.setdefault(_KEY, []).append(notification_id)


@event.listens_for(Session, "after_commit")
def _enqueue(session: Session) -> None:
    ids = session.info.pop(_KEY, None)
    if not ids:
        return
    from clinic.celery_app import enqueue
    from clinic.notifications.tasks import send

    for notification_id in ids:
        try:
            enqueue(send, notification_id)
        except Exception as exc:  # the dispatcher picks the row up after the claim timeout
            logger.error(
                "could not enqueue notification %s: %s", notification_id, type(exc).__name__
            )


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction) -> None:
    session.info.pop(_KEY, None)
