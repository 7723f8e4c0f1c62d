"""The intake's emails: what each says is limited to logistics (domain spec 4.2)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import current_app, url_for

from clinic.email import build_message, greeting
from clinic.intake.models import ConsultationRequest


def acknowledgement(request: ConsultationRequest, *, message_id: str | None = None):
    patient = request.patient
    tz = ZoneInfo(current_app.config["CLINIC_TIMEZONE"])
    received = request.submitted_at.astimezone(tz)
    return build_message(
        "intake_acknowledgement",
        to=patient.email,
        subject=f"We received your request - {current_app.config['CLINIC_NAME']}",
        greeting=greeting(patient),
        received=received.strftime("%A, %B %-d, %Y"),
        call_today=request.triage == "urgent",
        # Only a routine request hears the routine timetable; an urgent one is asked to call
        # today, an emergency one (already told to get emergency care) gets no timetable.
        routine=request.triage == "routine",
        message_id=message_id,
    )


def staff_alert(request_id: int, *, emergency: bool, to: str, message_id: str | None = None):
    """A red-flag intake is waiting: its level and a link to the request, nothing of the
    patient (domain spec 1.1.2: "Urgent intake needs review - log in")."""
    base = current_app.config["BASE_URL"]
    with current_app.test_request_context(base_url=base):
        link = base + url_for("staff.request_detail", request_id=request_id)
    return build_message(
        "staff_intake_alert",
        to=to,
        subject="Urgent intake needs review - log in"
        if emergency
        else "Same-day callback needed - log in",
        emergency=emergency,
        link=link,
        message_id=message_id,
    )
