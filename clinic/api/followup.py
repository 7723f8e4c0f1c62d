"""Follow-up API (staff): record a procedure and its plan; a patient's messages."""

from __future__ import annotations

from datetime import date

from flask import abort, jsonify

from clinic import audit, http
from clinic.api import bp
from clinic.api.auth import staff_or_abort
from clinic.api.idempotency import idempotent
from clinic.api.inputs import json_body
from clinic.errors import ValidationFailed
from clinic.extensions import csrf, db
from clinic.followup import services
from clinic.followup.models import Procedure
from clinic.models import Patient
from clinic.notifications import services as notifications
from clinic.notifications.models import Notification
from clinic.scheduling.models import Provider


def _date(raw) -> date | None:
    if not isinstance(raw, str) or len(raw) != 10:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    return day if http.sane_moment(day) else None


def _row(model, raw):
    return db.session.get(model, raw) if http.sane_id(raw) else None


def notification_json(row: Notification) -> dict:
    """A message as staff see it: what and when, never its content."""
    tz = http.clinic_tz()
    return {
        "id": row.id,
        "kind": row.kind,
        "template": row.template,
        "channel": row.channel,
        "due_at": row.due_at.astimezone(tz).isoformat(),
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "sent_at": row.sent_at.astimezone(tz).isoformat() if row.sent_at else None,
        "message_id": row.message_id,
    }


def procedure_json(procedure: Procedure) -> dict:
    return {
        "id": procedure.id,
        "patient_id": procedure.patient_id,
        "provider_id": procedure.provider_id,
        "performed_on": procedure.performed_on.isoformat(),
        "plan_version": procedure.plan_version,
        "follow_up": [
            {
                "code": tp.code,
                "label": tp.label,
                "due_on": tp.due_on.isoformat(),
                "window_start": tp.window_start.isoformat(),
                "window_end": tp.window_end.isoformat(),
                "status": tp.status,
            }
            for tp in procedure.timepoints
        ],
    }


@bp.post("/procedures")
@csrf.exempt
@idempotent
def create_procedure():
    user = staff_or_abort("followup.record")
    body = json_body()
    performed_on = _date(body.get("performed_on"))
    if performed_on is None and "performed_on" in body:
        raise ValidationFailed({"performed_on": ["Use YYYY-MM-DD."]})
    procedure = services.record_procedure(
        _row(Patient, body.get("patient_id")),
        _row(Provider, body.get("provider_id")),
        performed_on,
        actor=user,
        now=http.now(),
        client=http.client_meta(),
    )
    db.session.commit()
    return jsonify(procedure_json(procedure)), 201


@bp.get("/patients/<int:patient_id>/notifications")
def patient_notifications(patient_id: int):
    user = staff_or_abort("messages.view")
    if _row(Patient, patient_id) is None:
        abort(404)
    rows = notifications.for_patient(patient_id)
    audit.record(
        "view",
        actor=user,
        patient_id=patient_id,
        resource_type="notification",
        reason="api message list",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    return jsonify([notification_json(row) for row in rows])
