"""Web plumbing shared by the blueprints: security headers, client details, clocks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request
from werkzeug.routing import IntegerConverter

from clinic.limits import MAX_ID, parse_id, sane_id, sane_moment  # noqa: F401  (for the views)
from clinic.models import utcnow

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'"
)


class BoundedIntConverter(IntegerConverter):
    """`<int:id>` that only matches ids the database can hold (others are a plain 404)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def register_converters(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedIntConverter


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.path.startswith(
            ("/staff", "/intake", "/api/", "/checkin", "/book", "/appointments", "/notifications")
        ):
            response.headers["Cache-Control"] = "no-store"
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response


def public_post_limit() -> str:
    """The rate limit of the public POSTs (intake, API, staff login), from the config."""
    return current_app.config["PUBLIC_POST_RATE_LIMIT"]


def client_meta() -> dict:
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string}


def now() -> datetime:
    """The current time; tests may pin it with the CLINIC_NOW config key."""
    pinned = current_app.config.get("CLINIC_NOW")
    return pinned() if callable(pinned) else (pinned or utcnow())


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])
