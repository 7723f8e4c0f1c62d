"""GET /healthz: is the database reachable, is the broker reachable."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from clinic.extensions import db

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception as exc:
        logger.warning("health: database unreachable (%s)", type(exc).__name__)
        db.session.rollback()
        return False


def _broker_ok() -> bool:
    celery = current_app.extensions["celery"]
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception as exc:
        logger.warning("health: broker unreachable (%s)", type(exc).__name__)
        return False


@bp.get("/healthz")
def healthz():
    parts = {"database": _database_ok(), "broker": _broker_ok()}
    body = {name: "ok" if ok else "down" for name, ok in parts.items()}
    body["status"] = "ok" if all(parts.values()) else "down"
    return jsonify(body), 200 if all(parts.values()) else 503
