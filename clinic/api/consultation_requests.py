"""POST /api/v1/consultation-requests: the intake as JSON, same rules as the form."""

from __future__ import annotations

from flask import abort, jsonify

from clinic import audit, http
from clinic.api import bp
from clinic.api.idempotency import by_bearer_or_whole_body, idempotent
from clinic.api.inputs import json_body
from clinic.errors import ValidationFailed
from clinic.extensions import csrf, db, limiter
from clinic.followup.questions import current_odi_pack
from clinic.intake import odi, schema
from clinic.intake.models import ConsultationRequest
from clinic.intake.submit import submit_values
from clinic.scheduling import links
from clinic.staff import presenters
from clinic.staff.auth import bearer_user
from clinic.staff.roles import can


@bp.post("/consultation-requests")
@csrf.exempt
@limiter.limit(http.public_post_limit)
@idempotent(caller=by_bearer_or_whole_body)
def create_consultation_request():
    pack = current_odi_pack()  # its sections are fields only when the clinic has loaded one
    values, type_errors = schema.from_json(json_body(), odi.fields_for(pack).values())
    if type_errors:
        # report the rule errors of the other fields too, in one answer
        today = http.now().astimezone(http.clinic_tz()).date()
        _, rule_errors = schema.validate_all(values, today, odi.sections_for(pack))
        raise ValidationFailed({**rule_errors, **type_errors})
    req = submit_values(values, source="api", client=http.client_meta())
    body = {"id": req.id, "patient_id": req.patient_id, "triage": req.triage}
    if req.triage != "emergency":
        body["booking_token"] = links.booking_token(req)
    return jsonify(body), 201


@bp.get("/consultation-requests/<int:request_id>")
@csrf.exempt
def get_consultation_request(request_id: int):
    user = bearer_user()
    if user is None:
        return jsonify({"error": "unauthorized"}), 401, {"WWW-Authenticate": "Bearer"}
    if not can(user, "queue.view"):
        return jsonify({"error": "forbidden"}), 403
    req = db.session.get(ConsultationRequest, request_id) or abort(404)
    audit.record_about(
        "view",
        req,
        actor=user,
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    clinical, coverage = presenters.signals_for(user, req)
    allowed = {f.field_id for _, rows in presenters.visible_sections(user, req) for f in rows}
    body = {
        "id": req.id,
        "patient_id": req.patient_id,
        "status": req.status,
        "triage": req.triage,
        "red_flag": bool(req.red_flags),
        "submitted_at": req.submitted_at.isoformat(),
        "form_version": req.form_version,
        "rules_version": req.rules_version,
        "answers": {k: v for k, v in req.answers.items() if k in allowed},
        "candidacy_signals": clinical + coverage,
    }
    if can(user, "request.clinical"):
        body["red_flags"] = req.red_flags
    return jsonify(body)
