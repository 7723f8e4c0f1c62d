"""The unit of work shared by the form and the API: submit, commit, then side effects."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clinic import http
from clinic.celery_app import enqueue
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.intake import services, tasks
from clinic.intake.models import ConsultationRequest, IntakeDraft
from clinic.intake.rules import Triage, current_rules
from clinic.notifications import services as notifications

logger = logging.getLogger(__name__)


@dataclass
class SubmitResult:
    request: ConsultationRequest | None = None
    errors: dict[str, list[str]] | None = None


def submit_values(values: Mapping[str, Any], *, source: str, client: dict) -> ConsultationRequest:
    """Validate, store and commit one intake, then enqueue its emails. Raises ValidationFailed."""
    now = http.now()
    req = services.submit_request(
        values,
        source=source,
        rules=current_rules(),
        now=now,
        tz=http.clinic_tz(),
        client=client,
    )
    notifications.request_received(req, now=now, new=True)
    db.session.commit()
    after_commit(req.id, req.triage)
    return req


def submit_from_draft(draft: IntakeDraft, *, client: dict) -> SubmitResult:
    existing = db.session.get(ConsultationRequest, draft.request_id) if draft.request_id else None
    source = "proxy" if draft.answers.get("completed_by") not in (None, "self") else "patient"
    if draft.answers.get("completed_by") == "staff_on_behalf":
        source = "staff"
    now = http.now()
    try:
        req = services.submit_request(
            draft.answers,
            source=source,
            rules=current_rules(),
            now=now,
            tz=http.clinic_tz(),
            client=client,
            answered_at=draft.answered_at,
            existing=existing,
        )
    except ValidationFailed as exc:
        return SubmitResult(errors=exc.errors)
    already_alerted = existing is not None
    notifications.request_received(req, now=now, new=existing is None)
    db.session.delete(draft)
    db.session.commit()
    after_commit(req.id, req.triage, alert=not already_alerted)
    return SubmitResult(request=req)


def after_commit(request_id: int | None, level: str, *, alert: bool = True) -> None:
    """Alert staff at once about a committed red-flag request; never raise into the response.

    (The patient's acknowledgement is a message row committed with the request.)
    """
    if request_id is None or not alert or level not in (Triage.EMERGENCY, Triage.URGENT):
        return
    try:
        enqueue(tasks.alert_staff, request_id)
    except Exception as exc:  # the request is saved; staff still see it in the queue
        logger.error("could not enqueue %s: %s", tasks.alert_staff.name, type(exc).__name__)
