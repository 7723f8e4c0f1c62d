"""The patient's link to an appointment: signed, expiring, purpose-bound, no patient data."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app

from clinic.extensions import db
from clinic.scheduling.models import Appointment
from clinic.tokens import make_token, read_token

PURPOSE = "manage-appointment"
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
