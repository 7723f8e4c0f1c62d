"""What a staff member's role lets them see of a request (minimum necessary)."""

from __future__ import annotations

from dataclasses import dataclass

from clinic.followup.questions import current_odi_pack
from clinic.intake import odi
from clinic.intake.fields import FIELDS, RED_FLAGS, RETIRED, SECTIONS, SYMPTOMS, Field
from clinic.intake.models import ConsultationRequest
from clinic.intake.services import CLINICIAN_FIELDS
from clinic.models import AuditEvent
from clinic.staff.roles import can

SECTION_PERMISSION = {
    "A": "request.contact",
    "B": "request.insurance",
    "C": "request.clinical",
    "D": "request.clinical",
    "E": "request.clinical",
    "F": "request.clinical",
    "G": "request.clinical",
    "H": "request.contact",
}

CLINICIAN_LABELS = {
    "clin_lf_thickness_mm": "Max ligamentum flavum thickness at target level (mm)",
    "clin_target_levels": "Target level(s)",
    "clin_spondylolisthesis": "Spondylolisthesis",
    "clin_foraminal_severe": "Foraminal stenosis",
    "clin_facet_severe": "Facet arthropathy",
    "clin_disc_protrusion": "Disc protrusion",
    "clin_mme": "Opioid dose (MME per day)",
    "odi_external_score": "ODI % from a paper form",
}


@dataclass
class Answer:
    field_id: str
    label: str
    value: str


def display_value(field: Field, value) -> str:
    if value is None:
        return ""
    if field.kind in {"bool", "ack"}:
        return "Yes" if value else "No"
    if field.kind == "choice":
        return field.choice_label(value)
    if field.kind == "multi":
        return ", ".join(field.choice_label(v) for v in value)
    return str(value)


def visible_sections(user, request: ConsultationRequest) -> list[tuple[str, list[Answer]]]:
    """Answers by section, only the sections the user's role may see."""
    out = []
    answers = request.answers or {}
    for section in SECTIONS:
        if section is RED_FLAGS or not can(user, SECTION_PERMISSION[section.id]):
            continue
        fields = [g for f in section.fields for g in (f, *RETIRED.get(f.id, ()))]
        rows = [
            Answer(f.id, f.label, display_value(f, answers[f.id]))
            for f in fields
            if f.id in answers
        ]
        if section is SYMPTOMS:  # the ODI, when the patient was asked it
            rows += [Answer(*row) for row in odi.answer_rows(answers, current_odi_pack())]
        if rows:
            out.append((section.title, rows))
    return out


def clinician_rows(user, request: ConsultationRequest) -> list[Answer]:
    """Clinician-only findings the user may read but not enter (a physician's, for a nurse)."""
    if not can(user, "request.clinical"):
        return []
    entries = request.clinician_entries or {}
    rows = []
    for field_id, (_, _, _, roles) in CLINICIAN_FIELDS.items():
        value = entries.get(field_id)
        if value is None or user.role in roles:
            continue
        shown = ", ".join(value) if isinstance(value, list) else str(value).replace("_", " ")
        rows.append(Answer(field_id, CLINICIAN_LABELS[field_id], shown))
    return rows


def red_flag_rows(request: ConsultationRequest) -> list[Answer]:
    rows = []
    for flag in request.red_flags or []:
        field = FIELDS[flag["field"]]
        value = field.choice_label(flag["answer"])
        if "changed_to" in flag:  # raised, then the patient changed the answer: both stay
            later = flag["changed_to"]
            later = field.choice_label(later) if later is not None else "no answer"
            value = f"{value} (the patient later changed this to: {later})"
        rows.append(Answer(flag["field"], f"{flag['tier'].title()}: {field.label}", value))
    return rows


def signals_for(user, request: ConsultationRequest) -> tuple[list[dict], list[dict]]:
    """(candidacy signals, coverage signals) the user may see."""
    signals = request.candidacy_signals or []
    clinical = (
        [s for s in signals if s["level"] != "coverage"] if can(user, "request.signals") else []
    )
    coverage = (
        [s for s in signals if s["level"] == "coverage"]
        if can(user, "request.coverage_signals")
        else []
    )
    return clinical, coverage


# What the audit log's changed field names may be shown for: settings and staff accounts. On a
# patient's request or check-in the names are the answers (``rf_bowel`` on a red_flag_raised
# event says which red flag fired), and the log's reader, the practice admin, sees no PHI.
NON_PATIENT_RESOURCES = frozenset(
    {
        "staff_user",
        "staff_session",
        "api_token",
        "location",
        "provider",
        "appointment_type",
        "provider_hours",
        "schedule_exception",
        "time_off",
        "clinic_closure",
    }
)


def audit_fields(event: AuditEvent) -> list[str]:
    """The changed field names the audit page shows: none on an event about a patient."""
    if event.patient_id is not None or event.resource_type not in NON_PATIENT_RESOURCES:
        return []
    return list(event.changed_fields or [])
