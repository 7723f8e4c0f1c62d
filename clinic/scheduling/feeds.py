"""A provider's schedule as an iCalendar feed (RFC 5545) behind a secret URL.

Outlook, Google and Apple Calendar subscribe to ``/calendar/<feed_token>.ics``: the secret in the
URL is the only credential, so the feed carries the minimum necessary (the kind of visit and the
patient's initials, never a name, a diagnosis or an answer), the token is compared in constant
time and kept out of the logs, and staff rotate it when a URL leaks.
"""

from __future__ import annotations

import hmac
import logging
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app
from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from clinic import http
from clinic.extensions import db
from clinic.scheduling.models import ACTIVE_STATUSES, Appointment, AppointmentStatus, Provider

feeds_bp = Blueprint("feeds", __name__)

PAST = timedelta(days=30)
AHEAD = timedelta(days=180)
CACHE_CONTROL = "private, max-age=300"
# How often subscribers should poll (RFC 7986; X-PUBLISHED-TTL is Outlook's older name for it).
REFRESH = timedelta(minutes=15)
REFRESH_TEXT = "PT15M"

# The feed's path, not the back office's /staff/calendar/... pages.
# The secrets in link paths: feeds, booking links, manage links.
_TOKEN_IN_PATH = re.compile(
    r"(?<!/staff)(/calendar|/book|/appointments/manage|/checkin|/notifications/unsubscribe)"
    r"/[^\s\"?\x1b/]+"
)


class _RedactFeedTokens(logging.Filter):
    """Replace link secrets in a logged request line (dev server, gunicorn access log) or in
    the app's log of an unhandled error on a link's page."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's business, not ours
            return True
        if _TOKEN_IN_PATH.search(message):
            record.msg = _TOKEN_IN_PATH.sub(r"\1/[redacted]", message)
            record.args = None
        return True


@feeds_bp.record_once
def _keep_tokens_out_of_logs(state) -> None:
    redact = _RedactFeedTokens()
    # The request lines of the dev server and gunicorn, and the app's own "Exception on
    # <path>" line for an error on a link's page.
    for logger in map(logging.getLogger, ("werkzeug", "gunicorn.access", state.app.logger.name)):
        if not any(isinstance(f, _RedactFeedTokens) for f in logger.filters):
            logger.addFilter(redact)


def provider_for_token(token: str) -> Provider | None:
    """The active provider whose feed token this is (compared in constant time), or None."""
    if not token or len(token) > 64:
        return None
    provider = db.session.scalars(select(Provider).where(Provider.feed_token == token)).first()
    if provider is None or not provider.active:
        return None
    if not hmac.compare_digest(provider.feed_token.encode(), token.encode()):
        return None
    return provider


def feed_path(provider: Provider) -> str:
    return f"/calendar/{provider.feed_token}.ics"


def feed_url(provider: Provider) -> str:
    return current_app.config["BASE_URL"] + feed_path(provider)


def initials(first_name: str, last_name: str) -> str:
    return "".join(f"{part.strip()[:1].upper()}." for part in (first_name, last_name) if part)


def build_calendar(provider: Provider, *, now: datetime) -> bytes:
    """The VCALENDAR of the provider's appointments from 30 days ago to 180 days ahead."""
    config = current_app.config
    host = urlsplit(config["BASE_URL"]).hostname or "clinic.invalid"
    calendar = Calendar()
    calendar.add("prodid", f"-//{config['CLINIC_NAME']}//Provider schedule//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"{provider.name} - {config['CLINIC_NAME']}")
    calendar.add("name", f"{provider.name} - {config['CLINIC_NAME']}")
    calendar.add("x-wr-timezone", config["CLINIC_TIMEZONE"])
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", REFRESH_TEXT)
    appointments = db.session.scalars(
        select(Appointment)
        .options(
            joinedload(Appointment.patient),
            joinedload(Appointment.location),
            joinedload(Appointment.appointment_type),
        )
        .where(
            Appointment.provider_id == provider.id,
            Appointment.start_at >= now - PAST,
            Appointment.start_at < now + AHEAD,
        )
        .order_by(Appointment.start_at, Appointment.id)
    ).all()
    for appointment in appointments:
        calendar.add_component(_event(appointment, host=host, now=now))
    return calendar.to_ical()


S = AppointmentStatus
# RFC 5545 VEVENT STATUS per FHIR status. Not yet settled is TENTATIVE; cancelled, no-show and
# entered-in-error no longer hold the time: CANCELLED makes subscribed calendars drop (or strike
# out) the event. Whether the time is held (TRANSP) follows ACTIVE_STATUSES.
FEED_STATUS = {
    S.PROPOSED: "TENTATIVE",
    S.PENDING: "TENTATIVE",
    S.WAITLIST: "TENTATIVE",
    S.BOOKED: "CONFIRMED",
    S.ARRIVED: "CONFIRMED",
    S.CHECKED_IN: "CONFIRMED",
    S.FULFILLED: "CONFIRMED",
    S.CANCELLED: "CANCELLED",
    S.NOSHOW: "CANCELLED",
    S.ENTERED_IN_ERROR: "CANCELLED",
}


def _event(appointment: Appointment, *, host: str, now: datetime) -> Event:
    active = appointment.status in ACTIVE_STATUSES
    patient = appointment.patient
    location = appointment.location
    event = Event()
    event.add("uid", f"appointment-{appointment.id}@{host}")
    event.add("dtstamp", now)
    event.add("dtstart", appointment.start_at)
    event.add("dtend", appointment.end_at)
    event.add("sequence", appointment.sequence)
    event.add("status", FEED_STATUS[appointment.status])
    event.add("transp", "OPAQUE" if active else "TRANSPARENT")
    event.add(
        "summary",
        f"{appointment.appointment_type.name} - {initials(patient.first_name, patient.last_name)}",
    )
    event.add("location", f"{location.name}, {location.address}")
    event.add("created", appointment.created_at)
    event.add("last-modified", appointment.updated_at)
    return event


@feeds_bp.get("/calendar/<feed_token>.ics")
def provider_feed(feed_token: str):
    provider = provider_for_token(feed_token)
    if provider is None:
        abort(404)
    return (
        build_calendar(provider, now=http.now()),
        200,
        {
            "Content-Type": "text/calendar; charset=utf-8",
            "Cache-Control": CACHE_CONTROL,
            "Content-Disposition": 'inline; filename="schedule.ics"',
        },
    )
