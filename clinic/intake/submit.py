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

logger = logging.getLogger(__name__)


@dataclass
class SubmitResult:
    request: ConsultationRequest | None = None
    errors: dict[str, list[str]] | None = None


def submit_values(values: Mapping[str, Any], *, source: str, client: dict) -> ConsultationRequest:
    """Validate, store and commit one intake, then enqueue its emails. Raises ValidationFailed."""
    req = services.submit_request(
        values,
        source=source,
        rules=current_rules(),
        now=http.now(),
        tz=http.clinic_tz(),
        client=client,
    )
    db.session.commit()
    after_commit(req.id, req.triage)
    return req


def submit_from_draft(draft: IntakeDraft, *, client: dict) -> SubmitResult:
    existing = db.session.get(ConsultationRequest, draft.request_id) if draft.request_id else None
    source = "proxy" if draft.answers.get("completed_by") not in (None, "self") else "patient"
    if draft.answers.get("completed_by") == "staff_on_behalf":
        source = "staff"
    try:
        req = services.submit_request(
            draft.answers,
            source=source,
            rules=current_rules(),
            now=http.now(),
            tz=http.clinic_tz(),
            client=client,
            answered_at=draft.answered_at,
            existing=existing,
        )
    except ValidationFailed as exc:
        return SubmitResult(errors=exc.errors)
    already_alerted = existing is not None
    db.session.delete(draft)
    db.session.commit()
    after_commit(req.id, req.triage, acknowledge=True, alert=not already_alerted)
    return SubmitResult(request=req)


def after_commit(
    request_id: int | None,
    level: str,
    *,
    acknowledge: bool = True,
    alert: bool = True,
    alert_only: bool = False,
) -> None:
    """Enqueue the emails a committed request calls for; never raise into the response."""
    if request_id is None:
        return
    jobs = []
    if alert and level in (Triage.EMERGENCY, Triage.URGENT):
        jobs.append(tasks.alert_staff)
    if acknowledge and not alert_only:
        jobs.append(tasks.send_acknowledgement)
    for job in jobs:
        try:
            enqueue(job, request_id)
        except Exception as exc:  # the request is saved; staff still see it in the queue
            logger.error("could not enqueue %s: %s", job.name, type(exc).__name__)
