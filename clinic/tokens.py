"""Signed, expiring, purpose-bound tokens for links and bookings."""

from __future__ import annotations

import functools
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return _serializer_for(current_app.config["SECRET_KEY"], purpose)


@functools.lru_cache(maxsize=64)
def _serializer_for(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    """Made once per key and purpose: making one costs as much as signing with it."""
    return URLSafeTimedSerializer(secret_key, salt=f"clinic:{purpose}")


def make_token(purpose: str, data: Any) -> str:
    return _serializer(purpose).dumps(data)


def read_token(purpose: str, token: str, max_age_seconds: int) -> Any | None:
    """The token's data, or None when it is forged, expired or for another purpose."""
    try:
        return _serializer(purpose).loads(token, max_age=max_age_seconds)
    except BadSignature:
        return None
