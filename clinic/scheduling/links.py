"""The patient's link to an appointment: signed, expiring, purpose-bound, no patient data."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app

from clinic.extensions import db
from clinic.scheduling.models import Appointment
from clinic.tokens import make_token, read_token

PURPOSE = "manage-appointment"
BOOKING_PURPOSE = "booking"
BOOKING_MAX_AGE = timedelta(days=30)
MAX_AGE = timedelta(days=400)  # and never usable after the appointment is over


def manage_token(appointment: Appointment) -> str:
    return make_token(PURPOSE, {"a": appointment.id})


def manage_url(appointment: Appointment) -> str:
    return f"{current_app.config['BASE_URL']}/appointments/manage/{manage_token(appointment)}"


def appointment_for(token: str, now: datetime) -> Appointment | None:
    """The appointment behind a link (after a reschedule: the same, moved, appointment)."""
    data = read_token(PURPOSE, token, int(MAX_AGE.total_seconds()))
    if not isinstance(data, dict) or not isinstance(data.get("a"), int):
        return None
    appointment = db.session.get(Appointment, data["a"])
    if appointment is None or appointment.end_at + timedelta(days=1) < now:
        return None
    return appointment


def booking_token(request) -> str:
    """The link an intake gives its patient to book a consultation (one live booking)."""
    return make_token(BOOKING_PURPOSE, {"request_id": request.id, "patient_id": request.patient_id})


def read_booking_token(token) -> dict | None:
    """{"request_id", "patient_id"} of a valid booking token, or None."""
    if not isinstance(token, str) or len(token) > 500:
        return None
    data = read_token(BOOKING_PURPOSE, token, int(BOOKING_MAX_AGE.total_seconds()))
    if not isinstance(data, dict) or not isinstance(data.get("patient_id"), int):
        return None
    return data
