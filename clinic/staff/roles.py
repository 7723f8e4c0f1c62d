"""Who may see and do what: domain spec 4.4, minimum necessary, as one table."""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user

from clinic.models import Role

FD, NURSE, DOC, BILL, ADMIN = (
    Role.FRONT_DESK,
    Role.NURSE,
    Role.PHYSICIAN,
    Role.BILLING,
    Role.ADMIN,
)

PERMISSIONS: dict[str, set[str]] = {
    "queue.view": {FD, NURSE, DOC, BILL},
    "request.contact": {FD, NURSE, DOC, BILL},  # section A, consents
    "request.insurance": {FD, NURSE, DOC, BILL},  # section B
    "request.clinical": {NURSE, DOC},  # sections C-G, red-flag detail
    "request.signals": {NURSE, DOC},  # candidacy signals
    "request.coverage_signals": {NURSE, DOC, BILL},
    "request.status": {FD, NURSE, DOC},
    "request.callback": {FD, NURSE, DOC},
    "request.ack_red_flag": {NURSE, DOC},
    "request.clinician_entries": {NURSE, DOC},
    "appointments.view": {FD, NURSE, DOC, BILL},
    "appointments.manage": {FD, NURSE, DOC},
    "schedule.edit": {FD, ADMIN},  # locations, providers, visit types, hours: no patient data
    "schedule.feeds": {FD},  # feed URLs read appointment times with patients' initials
    "messages.view": {FD, NURSE, DOC},  # message log: patient, kind, status, errors; no content
    "messages.resend": {FD, NURSE, DOC},
    "tasks.view": {FD, NURSE, DOC},
    "followup.record": {NURSE, DOC},  # record a procedure, which starts its follow-up plan
    "followup.outcomes": {NURSE, DOC},  # check-in answers, scores, the outcome chart
    "followup.ack_pause": {NURSE, DOC},  # acknowledge a check-in red flag, resume automation
    "followup.unlock": {NURSE, DOC},  # reopen a check-in link locked by wrong dates of birth
    # The practice admin holds no PHI by default (spec 4.4): users, the audit log (no answers,
    # see presenters.audit_fields) and the schedule's settings, nothing naming a patient.
    "users.manage": {ADMIN},
    "audit.view": {ADMIN},
}

ROLE_LABELS = {FD: "Front desk", NURSE: "Nurse", DOC: "Physician", BILL: "Billing", ADMIN: "Admin"}


def can(user, permission: str) -> bool:
    return bool(
        user and getattr(user, "is_authenticated", False) and user.role in PERMISSIONS[permission]
    )


def require(permission: str):
    """View decorator: 403 unless the logged-in user's role has the permission."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not can(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
