"""Choosing a patient on a staff form: the booking form, the waitlist and recording a procedure.

A clinic has thousands of patients, too many for one list: a form lists at most LIMIT, the most
recently added, or those matching every term of a name search. The search is posted (a
patient's name never goes into a URL or an access log), and the patient already chosen stays
listed whatever the search.
"""

from __future__ import annotations

from flask import request
from sqlalchemy import or_, select

from clinic.extensions import db
from clinic.models import Patient

LIMIT = 100  # patients listed at most
MAX_TERMS = 4
MAX_SEARCH = 100  # characters of the search read


def searching() -> bool:
    """Was the form posted by its Search button (list patients, change nothing)?"""
    return request.method == "POST" and "find" in request.form


def search_terms() -> list[str]:
    """The posted name search as words (commas count as spaces), at most MAX_TERMS."""
    raw = request.form.get("q", "").replace("\x00", "")[:MAX_SEARCH]
    return [t for t in raw.replace(",", " ").split() if t][:MAX_TERMS]


def search_text() -> str:
    """The search as the form shows it again: its terms, one space apart."""
    return " ".join(search_terms())


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def patients(terms: list[str], chosen: int | None) -> list[Patient]:
    """Patients whose first or last name holds every term (else the most recently added),
    at most LIMIT, and the chosen one; sorted by name."""
    query = select(Patient)
    for term in terms:
        like = _like(term)
        query = query.where(
            or_(
                Patient.last_name.ilike(like, escape="\\"),
                Patient.first_name.ilike(like, escape="\\"),
            )
        )
    if not terms:
        query = query.order_by(Patient.created_at.desc(), Patient.id.desc())
    found = list(db.session.scalars(query.limit(LIMIT)))
    if chosen and chosen not in {p.id for p in found}:
        found += [p for p in [db.session.get(Patient, chosen)] if p is not None]
    found.sort(key=lambda p: (p.last_name.lower(), p.first_name.lower(), p.id))
    return found


def label(patient: Patient) -> str:
    """How a list names a patient: two patients may share a name, not also a birth date and id."""
    return (
        f"{patient.last_name}, {patient.first_name} "
        f"(born {patient.date_of_birth:%m/%d/%Y}, #{patient.id})"
    )


def choices(terms: list[str], chosen: int | None, prompt: str = "Choose a patient") -> list[tuple]:
    """``patients`` as a SelectField's choices, with an empty first choice."""
    return [("", prompt)] + [(p.id, label(p)) for p in patients(terms, chosen)]
