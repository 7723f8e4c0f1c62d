"""The unsubscribe link on routine messages: GET shows what it does, POST does it.

Mail clients that support RFC 8058 POST ``List-Unsubscribe=One-Click`` to the same URL without
a form, so the POST is exempt from CSRF: the signed token in the path is the authority.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from clinic import audit, http
from clinic.extensions import csrf, db, limiter
from clinic.models import Patient
from clinic.notifications import links, sending
from clinic.notifications.models import Notification

bp = Blueprint("notifications", __name__)


def _patient_for(token: str) -> Patient | None:
    notification_id = links.read_unsubscribe(token)
    row = db.session.get(Notification, notification_id) if notification_id else None
    patient = db.session.get(Patient, row.patient_id) if row and row.patient_id else None
    return patient if patient is not None and patient.email else None


@bp.get("/notifications/unsubscribe/<token>")
def unsubscribe_form(token: str):
    if _patient_for(token) is None:
        return render_template("scheduling/link_expired.html", about="email"), 404
    return render_template("notifications/unsubscribe.html", done=False)


@bp.post("/notifications/unsubscribe/<token>")
@csrf.exempt
@limiter.limit(http.public_post_limit)
def unsubscribe(token: str):
    patient = _patient_for(token)
    if patient is None:
        return render_template("scheduling/link_expired.html", about="email"), 404
    now = http.now()
    sending.suppress(patient.email, "unsubscribed", "patient's unsubscribe link", now=now)
    audit.record(
        "update",
        patient_id=patient.id,
        resource_type="email_suppression",
        changed_fields=["reason"],
        reason="unsubscribed from reminders and check-ins",
        client=http.client_meta(),
        now=now,
    )
    db.session.commit()
    return render_template("notifications/unsubscribe.html", done=True)
