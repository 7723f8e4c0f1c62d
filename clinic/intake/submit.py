"""The unit of work shared by the form and the API: the request and its message rows, one
commit; the send task gets the ids after it (``notifications.outbox``). A new request's
acknowledgement is stored with it (``intake.store``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clinic import http
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.followup.questions import current_odi_pack
from clinic.intake import services
from clinic.intake.models import ConsultationRequest, IntakeDraft
from clinic.intake.rules import current_rules
from clinic.notifications import services as notifications

logger = logging.getLogger(__name__)


@dataclass
class SubmitResult:
    request: ConsultationRequest | None = None
    errors: dict[str, list[str]] | None = None


def submit_values(values: Mapping[str, Any], *, source: str, client: dict) -> ConsultationRequest:
    """Validate, store and commit one intake with its message rows. Raises ValidationFailed."""
    now = http.now()
    req = services.submit_request(
        values,
        source=source,
        rules=current_rules(),
        now=now,
        tz=http.clinic_tz(),
        client=client,
        odi_pack=current_odi_pack(),
    )
    notifications.request_flagged(req, now=now, new=True)
    db.session.commit()  # the staff alert is handed to the send task once this commits
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
            odi_pack=current_odi_pack(),
        )
    except ValidationFailed as exc:
        return SubmitResult(errors=exc.errors)
    if existing is not None:  # a new request got its acknowledgement with it
        notifications.request_received(req, now=now)
    # Staff were alerted when the partial request was saved at the red-flag answer, if it was.
    notifications.request_flagged(req, now=now, new=existing is None)
    db.session.delete(draft)
    db.session.commit()
    return SubmitResult(request=req)
