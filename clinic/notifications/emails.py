"""What each message says: logistics only (domain spec 4.2). Template ids, not content, are
logged; nothing here names a visit's kind, a diagnosis, a medicine or an answer."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage

from flask import current_app

from clinic import http
from clinic.email import build_message, greeting
from clinic.extensions import db
from clinic.intake import emails as intake_emails
from clinic.intake.models import ConsultationRequest
from clinic.models import Patient
from clinic.notifications import ics, links
from clinic.notifications.models import INTAKE_ALERT_KINDS, Notification
from clinic.scheduling import links as appointment_links
from clinic.scheduling.models import Appointment

SUBJECTS = {
    "confirmation": "Your appointment on {when}",
    "procedure_notice": "Your appointment on {when}",
    "update": "Your appointment has moved to {when}",
    "cancellation": "Your appointment on {when} is cancelled",
    "reminder_72h": "Reminder: appointment on {when}",
    "reminder_48h": "Reminder: appointment on {when}",
    "reminder_24h": "Reminder: appointment on {when}",
    "no_show": "We missed you - {clinic}",
    "checkin": "A short check-in from {clinic}",
    "checkin_resend_1": "Reminder: a short check-in from {clinic}",
    "checkin_resend_2": "Reminder: a short check-in from {clinic}",
    "staff_alert": "A patient check-in needs review - log in",
}


def when(moment: datetime) -> str:
    """ "Tue, Dec 1 at 9:30 AM" on the clinic's clock."""
    local = moment.astimezone(http.clinic_tz())
    return local.strftime("%a, %b %-d at %-I:%M %p")


def _long_when(moment: datetime) -> str:
    local = moment.astimezone(http.clinic_tz())
    return local.strftime("%A, %B %-d, %Y at %-I:%M %p %Z")


def build(row: Notification, *, now: datetime) -> EmailMessage:
    """The message for a row, addressed to its one recipient."""
    config = current_app.config
    if row.kind == "staff_alert":
        return build_message(
            row.template,
            to=config["STAFF_ALERT_EMAIL"],
            subject=SUBJECTS[row.kind],
            message_id=row.message_id,
            link=config["BASE_URL"] + "/staff/tasks",
            emergency=True,
        )
    if row.kind == "intake_acknowledgement":
        request = db.session.get(ConsultationRequest, row.cause_id)
        return intake_emails.acknowledgement(request, message_id=row.message_id)
    if row.kind in INTAKE_ALERT_KINDS.values():
        return intake_emails.staff_alert(
            row.cause_id,
            emergency=row.kind == INTAKE_ALERT_KINDS["emergency"],
            to=config["STAFF_ALERT_EMAIL"],
            message_id=row.message_id,
        )
    patient = row.patient or db.session.get(Patient, row.patient_id)
    context = {
        "greeting": greeting(patient),
        "unsubscribe_url": links.unsubscribe_url(row) if row.routine else None,
        "kind": row.kind,
    }
    attachment = None
    if row.cause_type == "appointment":
        appointment = db.session.get(Appointment, row.cause_id)
        location = appointment.location
        context |= {
            "when": _long_when(appointment.start_at),
            "place": location.name,
            "address": location.address,
            "place_phone": location.phone,
            "manage_url": appointment_links.manage_url(appointment),
            "instructions_waiting": row.kind == "procedure_notice"
            or _instructions(row, appointment),
        }
        subject = SUBJECTS[row.kind].format(
            when=when(appointment.start_at), clinic=config["CLINIC_NAME"]
        )
        if row.kind in ("confirmation", "procedure_notice", "update", "cancellation"):
            attachment = ics.invitation(appointment, cancel=row.kind == "cancellation", now=now)
    else:
        context |= {"checkin_url": links.checkin_url(row)}
        subject = SUBJECTS[row.kind].format(clinic=config["CLINIC_NAME"])
    msg = build_message(
        row.template, to=patient.email, subject=subject, message_id=row.message_id, **context
    )
    if context["unsubscribe_url"]:
        # RFC 8058 one-click: mail clients POST to the same link.
        msg["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if attachment is not None:
        method = "CANCEL" if row.kind == "cancellation" else "REQUEST"
        msg.add_attachment(
            attachment,
            maintype="text",
            subtype="calendar",
            filename="appointment.ics",
            params={"method": method},
        )
    return msg


def _instructions(row: Notification, appointment: Appointment) -> bool:
    from clinic.notifications.services import schedule

    for step in schedule().steps(appointment.appointment_type.code):
        if step.kind == row.kind:
            return step.instructions_waiting
    return False
