"""Links in messages: signed, expiring, purpose-bound tokens holding ids only."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from clinic.notifications.models import Notification
from clinic.tokens import make_token, read_token

UNSUBSCRIBE = "unsubscribe"
UNSUBSCRIBE_MAX_AGE = timedelta(days=365)
CHECKIN = "checkin"
CHECKIN_MAX_AGE = timedelta(days=120)


def unsubscribe_url(row: Notification) -> str:
    return f"{current_app.config['BASE_URL']}/notifications/unsubscribe/" + make_token(
        UNSUBSCRIBE, {"n": row.id}
    )


def read_unsubscribe(token: str) -> int | None:
    data = read_token(UNSUBSCRIBE, token, int(UNSUBSCRIBE_MAX_AGE.total_seconds()))
    return data["n"] if isinstance(data, dict) and isinstance(data.get("n"), int) else None


def checkin_url(row: Notification) -> str:
    """The check-in a follow-up message opens (the token names the timepoint only)."""
    return f"{current_app.config['BASE_URL']}/checkin/" + make_token(CHECKIN, {"t": row.cause_id})


def read_checkin(token: str) -> int | None:
    if not isinstance(token, str) or len(token) > 300:
        return None
    data = read_token(CHECKIN, token, int(CHECKIN_MAX_AGE.total_seconds()))
    return data["t"] if isinstance(data, dict) and isinstance(data.get("t"), int) else None
