"""The .ics a confirmation carries (RFC 5546): REQUEST when booked or moved, CANCEL when
cancelled. The UID never changes; SEQUENCE is the appointment's revision."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app
from icalendar import Calendar, Event, vCalAddress

from clinic.scheduling.models import Appointment


def uid(appointment: Appointment) -> str:
    host = urlsplit(current_app.config["BASE_URL"]).hostname or "clinic.invalid"
    return f"appointment-{appointment.id}@{host}"


def invitation(appointment: Appointment, *, cancel: bool, now: datetime) -> bytes:
    """A one-event calendar: where and when, the clinic's name; never the kind of visit."""
    config = current_app.config
    calendar = Calendar()
    calendar.add("prodid", f"-//{config['CLINIC_NAME']}//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")
    event = Event()
    event.add("uid", uid(appointment))
    event.add("sequence", appointment.sequence)
    event.add("dtstamp", now)
    event.add("dtstart", appointment.start_at)
    event.add("dtend", appointment.end_at)
    event.add("summary", f"Appointment at {config['CLINIC_NAME']}")
    location = appointment.location
    event.add("location", f"{location.name}, {location.address}")
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    organizer = vCalAddress("mailto:" + config["MAIL_FROM"].rpartition("<")[2].strip("> "))
    organizer.params["cn"] = config["CLINIC_NAME"]
    event.add("organizer", organizer)
    calendar.add_component(event)
    return calendar.to_ical()
