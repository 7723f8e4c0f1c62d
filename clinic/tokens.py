"""Signed, expiring, purpose-bound tokens for links and bookings."""

from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"clinic:{purpose}")


def make_token(purpose: str, data: Any) -> str:
    return _serializer(purpose).dumps(data)


def read_token(purpose: str, token: str, max_age_seconds: int) -> Any | None:
    """The token's data, or None when it is forged, expired or for another purpose."""
    try:
        return _serializer(purpose).loads(token, max_age=max_age_seconds)
    except BadSignature:
        return None
