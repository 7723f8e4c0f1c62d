"""Template helpers: clinic details, local times, the idle limit."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Flask


def init_app(app: Flask) -> None:
    @app.context_processor
    def clinic_context():
        return {
            "clinic_name": app.config["CLINIC_NAME"],
            "clinic_phone": app.config["CLINIC_PHONE"],
            "idle_seconds": app.config["STAFF_IDLE_MINUTES"] * 60,
        }

    @app.template_filter("us_date")
    def us_date(value: str) -> str:
        """A stored YYYY-MM-DD shown as MM/DD/YYYY; anything else (a typo being fixed) as is."""
        try:
            return date.fromisoformat(value).strftime("%m/%d/%Y")
        except (TypeError, ValueError):
            return value

    @app.template_filter("local")
    def local(value: datetime | None, fmt: str = "%b %-d, %Y %-I:%M %p") -> str:
        if value is None:
            return ""
        return value.astimezone(ZoneInfo(app.config["CLINIC_TIMEZONE"])).strftime(fmt)
