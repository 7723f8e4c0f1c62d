"""Intake services: submit a request, triage it, change its status. They flush, never commit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from clinic import audit, database
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db
from clinic.followup.questions import OdiPack
from clinic.intake import odi, schema, store
from clinic.intake.fields import FORM_VERSION
from clinic.intake.models import ConsultationRequest, RequestStatus, StatusChange
from clinic.intake.rules import TRIAGE_RANK, RuleSet, Triage, candidacy_signals, triage
from clinic.models import StaffUser

CLINICIAN_FIELDS = {
    # field id: (kind, min, max, roles allowed to enter it)
    "clin_lf_thickness_mm": ("decimal", 0.0, 15.0, {"physician"}),
    "clin_target_levels": ("multi", None, None, {"physician"}),
    "clin_spondylolisthesis": ("choice", None, None, {"physician"}),
    # spec 1.7: confounders per MiDAS III / MOTION
    "clin_foraminal_severe": ("choice", None, None, {"physician"}),
    "clin_facet_severe": ("choice", None, None, {"physician"}),
    "clin_disc_protrusion": ("choice", None, None, {"physician"}),
    "clin_mme": ("int", 0, 2000, {"physician", "nurse"}),
    "odi_external_score": ("int", 0, 100, {"physician", "nurse"}),
}
SPONDY_CHOICES = ("none", "grade_I_stable", "grade_I_unstable", "grade_II_plus")
GRADE_CHOICES = ("none", "mild", "moderate", "severe")
CLINICIAN_CHOICES = {
    "clin_spondylolisthesis": SPONDY_CHOICES,
    "clin_foraminal_severe": GRADE_CHOICES,
    "clin_facet_severe": GRADE_CHOICES,
    "clin_disc_protrusion": GRADE_CHOICES,
}
LEVEL_CODES = ("L1-2", "L2-3", "L3-4", "L4-5", "L5-S1")

ALLOWED_STATUS_CHANGES = {
    RequestStatus.NEW: {
        RequestStatus.IN_REVIEW,
        RequestStatus.NEEDS_INFORMATION,
        RequestStatus.DECLINED,
        RequestStatus.BOOKED,
    },
    RequestStatus.IN_REVIEW: {
        RequestStatus.NEEDS_INFORMATION,
        RequestStatus.DECLINED,
        RequestStatus.BOOKED,
        RequestStatus.NEW,
    },
    RequestStatus.NEEDS_INFORMATION: {
        RequestStatus.IN_REVIEW,
        RequestStatus.DECLINED,
        RequestStatus.BOOKED,
    },
    RequestStatus.DECLINED: {RequestStatus.IN_REVIEW},
    RequestStatus.BOOKED: {RequestStatus.IN_REVIEW},
}


def callback_due(now: datetime, tz: ZoneInfo, deadline_hour: int = 17) -> datetime:
    """End of the same business day in the clinic's zone (next business day after hours)."""
    local = now.astimezone(tz)
    day = local.date()
    if local.time() >= time(deadline_hour) or day.weekday() >= 5:
        day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(deadline_hour), tzinfo=tz).astimezone(now.tzinfo)


def consent_record(
    answers: Mapping[str, Any], rules: RuleSet, now: datetime, client: Mapping[str, Any]
) -> dict[str, Any]:
    """What was agreed, to which text version, when and from where.

    The voicemail answer is asked with the contact details (section A) and recorded here as
    ``consent_voicemail`` (domain spec 1.9), with the version of its question's text.
    """
    texts = rules.consents["texts"]
    record = {}
    for field_id, record_id, text_key in (
        ("ack_not_emergency", "ack_not_emergency", "not_emergency"),
        ("ack_npp", "ack_npp", "npp"),
        ("consent_email", "consent_email", "email"),
        ("consent_sms", "consent_sms", "sms"),
        ("voicemail_ok", "consent_voicemail", "voicemail"),
        ("consent_qi_use", "consent_qi_use", "qi"),
        ("attest_accurate", "attest_accurate", "attest"),
    ):
        if field_id in answers:
            record[record_id] = {"value": bool(answers[field_id]), "text_version": texts[text_key]}
    record["_meta"] = {
        "version": rules.consents["version"],
        "at": now.isoformat(),
        "ip": client.get("ip"),
        "user_agent": (client.get("user_agent") or "")[:300],
    }
    return record


def submit_request(
    values: Mapping[str, Any],
    *,
    source: str,
    rules: RuleSet,
    now: datetime,
    tz: ZoneInfo,
    client: Mapping[str, Any] | None = None,
    answered_at: Mapping[str, str] | None = None,
    existing: ConsultationRequest | None = None,
    odi_pack: OdiPack | None = None,
) -> ConsultationRequest:
    """Validate a whole intake and store it as a request attached to a patient.

    ``values`` are parsed Python values (``schema.from_form`` / ``schema.from_json``).
    ``existing`` is the partial request saved when an emergency answer was given early; the
    full submission completes it rather than creating a second one. With the clinic's
    ``odi_pack`` the ODI is asked, and stored scored with the pack's ids.
    """
    client = client or {}
    sections = odi.sections_for(odi_pack)
    answers, errors = schema.validate_all(values, now.astimezone(tz).date(), sections)
    if errors:
        raise ValidationFailed(errors)
    answers = odi.scored(answers, odi_pack)
    patient = store.new_patient(answers, now)
    request = existing or ConsultationRequest(submitted_at=now)
    request.complete = True
    request.source = source
    request.completed_by = answers["completed_by"]
    request.proxy_name = answers.get("proxy_name")
    request.proxy_relationship = answers.get("proxy_relationship")
    request.answers = answers
    request.answered_at = dict(answered_at or {s.id: now.isoformat() for s in sections})
    request.consents = consent_record(answers, rules, now, client)
    warning = schema.signature_warning(answers)
    request.warnings = [warning] if warning else []
    request.client_ip = client.get("ip")
    request.user_agent = (client.get("user_agent") or "")[:300] or None
    request.updated_at = now
    newly_flagged = _apply_rules(request, rules, now, tz)
    if existing is None:
        event = audit.event(
            "create",
            resource_type=ConsultationRequest.__tablename__,
            **_submission(request, source, client, now),
        )
        store.insert_new_request(patient, request, event, now)
    else:
        request.patient = store.find_or_insert_patient(patient)
        db.session.flush()
        audit.record_about("update", request, **_submission(request, source, client, now))
    _audit_flags(request, newly_flagged, now)
    return request


def save_partial(
    answers: Mapping[str, Any],
    *,
    source: str,
    rules: RuleSet,
    now: datetime,
    tz: ZoneInfo,
    client: Mapping[str, Any] | None = None,
    existing: ConsultationRequest | None = None,
) -> ConsultationRequest:
    """Store a red-flag answer at once, before the rest of the form is filled.

    Staff must hear of an emergency or urgent answer even if the patient stops here; the full
    submission later completes this same request.
    """
    if existing is not None:
        existing.answers = dict(answers)
        existing.updated_at = now
        newly_flagged = _apply_rules(existing, rules, now, tz)
        db.session.flush()
        audit.record_about("update", existing, **_submission(existing, source, client, now))
        _audit_flags(existing, newly_flagged, now)
        return existing
    client = client or {}
    request = ConsultationRequest(
        submitted_at=now,
        updated_at=now,
        complete=False,
        source=source,
        answers=dict(answers),
        answered_at={"C": now.isoformat()},
        consents={},
        client_ip=client.get("ip"),
        user_agent=(client.get("user_agent") or "")[:300] or None,
    )
    newly_flagged = _apply_rules(request, rules, now, tz)
    database.insert(request)
    audit.record_about("create", request, **_submission(request, source, client, now))
    _audit_flags(request, newly_flagged, now)
    return request


def _apply_rules(
    request: ConsultationRequest, rules: RuleSet, now: datetime, tz: ZoneInfo
) -> set[str]:
    """Triage and signals onto the request; returns the red flags it did not have before.

    A red flag, once raised, stays: a patient who saw the emergency page and then went back
    and changed the answer keeps the flag (with the first answer and what it became) and the
    triage it gave, for staff to clear with the patient. Triage never drops on an update.
    """
    result = triage(request.answers, rules)
    fired = {f["field"] for f in result.red_flags}
    earlier = request.red_flags or []
    newly_flagged = fired - {f["field"] for f in earlier}
    withdrawn = [
        {**flag, "changed_to": request.answers.get(flag["field"])}
        for flag in earlier
        if flag["field"] not in fired
    ]
    level = min([result.level, *(Triage(f["tier"]) for f in withdrawn)], key=TRIAGE_RANK.get)
    request.form_version = FORM_VERSION
    request.rules_version = rules.version
    request.triage = level
    request.triage_rank = TRIAGE_RANK[level]
    request.red_flags = result.red_flags + withdrawn
    request.red_flag_notes = result.notes
    today = now.astimezone(tz).date()
    request.candidacy_signals = candidacy_signals(
        request.answers, request.clinician_entries or {}, rules, today
    )
    # urgent: call back today; emergency: check the patient got emergency care
    if level != Triage.ROUTINE and request.callback_due_at is None:
        request.callback_due_at = callback_due(now, tz)
    return newly_flagged


def _submission(
    request: ConsultationRequest, source: str, client: Mapping | None, now: datetime
) -> dict[str, Any]:
    """The audit event of the patient's (or their proxy's) own create or update of a request,
    from the form or the public API: there is no staff user, so the actor is the patient."""
    return {
        "actor_role": audit.PATIENT,
        "changed_fields": ["answers", "triage"],
        "reason": f"intake {'completed' if request.complete else 'saved at a red-flag answer'}"
        f" ({source})",
        "client": client,
        "now": now,
    }


def _audit_flags(request: ConsultationRequest, newly_flagged: set[str], now: datetime) -> None:
    if newly_flagged:
        audit.record_about(
            "red_flag_raised", request, changed_fields=sorted(newly_flagged), now=now
        )


def change_status(
    request: ConsultationRequest,
    to_status: str,
    reason: str,
    *,
    actor: StaffUser,
    now: datetime,
    client: dict | None = None,
) -> StatusChange:
    """Move a request to a new status; every change needs a reason."""
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if to_status not in RequestStatus.__members__.values():
        errors["status"] = ["Choose a status from the list."]
    elif to_status not in ALLOWED_STATUS_CHANGES[RequestStatus(request.status)]:
        errors["status"] = [f"A request can't go from {request.status} to {to_status}."]
    if not reason:
        errors["reason"] = ["Give a reason for the change."]
    elif len(reason) > 1000:
        errors["reason"] = ["Use at most 1000 characters."]
    if errors:
        raise ValidationFailed(errors)
    change = StatusChange(
        request=request,
        from_status=request.status,
        to_status=to_status,
        reason=reason,
        actor_id=actor.id,
        at=now,
    )
    db.session.add(change)
    request.status = to_status
    request.updated_at = now
    audit.record_about(
        "update",
        request,
        actor=actor,
        changed_fields=["status"],
        reason=reason,
        client=client,
        now=now,
    )
    db.session.flush()
    return change


def acknowledge_red_flag(
    request: ConsultationRequest, *, actor: StaffUser, now: datetime, client: dict | None = None
) -> None:
    """A clinician has seen the red flags of this request."""
    if not request.red_flags:
        raise DomainError("This request has no red flags.")
    if request.red_flag_ack_at is None:
        request.red_flag_ack_at = now
        request.red_flag_ack_by_id = actor.id
        audit.record_about(
            "red_flag_ack",
            request,
            actor=actor,
            client=client,
            now=now,
        )
    db.session.flush()


def complete_callback(
    request: ConsultationRequest, *, actor: StaffUser, now: datetime, client: dict | None = None
) -> None:
    """Record that staff made the same-day callback."""
    if request.callback_due_at is None:
        raise DomainError("This request has no callback to make.")
    if request.callback_done_at is None:
        request.callback_done_at = now
        audit.record_about(
            "update",
            request,
            actor=actor,
            changed_fields=["callback_done_at"],
            client=client,
            now=now,
        )
    db.session.flush()


def update_clinician_entries(
    request: ConsultationRequest,
    raw: Mapping[str, str],
    *,
    actor: StaffUser,
    rules: RuleSet,
    now: datetime,
    tz: ZoneInfo,
    client: dict | None = None,
) -> None:
    """Save clinician-only findings (imaging, MME, ODI total) and recompute the signals."""
    entries = dict(request.clinician_entries or {})
    errors: dict[str, list[str]] = {}
    changed = []
    for field_id, (kind, lo, hi, roles) in CLINICIAN_FIELDS.items():
        if field_id not in raw or actor.role not in roles:
            continue
        value = raw[field_id]
        try:
            parsed = _parse_clinician_value(kind, value, lo, hi, field_id)
        except ValueError as exc:
            errors[field_id] = [str(exc)]
            continue
        if entries.get(field_id) != parsed:
            entries[field_id] = parsed
            changed.append(field_id)
    if errors:
        raise ValidationFailed(errors)
    if not changed:
        return
    request.clinician_entries = entries
    request.candidacy_signals = candidacy_signals(
        request.answers, entries, rules, now.astimezone(tz).date()
    )
    request.rules_version = rules.version
    request.updated_at = now
    audit.record_about(
        "update",
        request,
        actor=actor,
        changed_fields=changed,
        client=client,
        now=now,
    )
    db.session.flush()


def _parse_clinician_value(kind, value, lo, hi, field_id):
    if kind == "multi":
        items = value if isinstance(value, list) else [value]
        items = [v for v in items if v]
        if any(v not in LEVEL_CODES for v in items):
            raise ValueError("Choose levels from the list.")
        return items or None
    value = (value or "").strip() if isinstance(value, str) else value
    if value in ("", None):
        return None
    if kind == "choice":
        if value not in CLINICIAN_CHOICES[field_id]:
            raise ValueError("Choose from the list.")
        return value
    try:
        number = float(value) if kind == "decimal" else int(value)
    except (TypeError, ValueError):
        raise ValueError("Enter a number.") from None
    if not (lo <= number <= hi):
        raise ValueError(f"Enter a number from {lo} to {hi}.")
    if kind == "decimal":
        number = round(number, 1)
    return number


def mark_booked(request: ConsultationRequest, *, now: datetime) -> None:
    """The patient booked a consultation from the intake's link."""
    if request.status == RequestStatus.BOOKED:
        return
    db.session.add(
        StatusChange(
            request=request,
            from_status=request.status,
            to_status=RequestStatus.BOOKED,
            reason="The patient booked online.",
            at=now,
        )
    )
    request.status = RequestStatus.BOOKED
    request.updated_at = now
    audit.record_about(
        "update", request, changed_fields=["status"], reason="booked online", now=now
    )
    db.session.flush()
