"""The append-only audit log: one function to write an event (``record``); ``event`` builds one
for a caller that stores it with other rows in one statement (a new intake)."""

from __future__ import annotations

from datetime import datetime

from clinic import database
from clinic.models import AuditEvent, StaffUser, utcnow

PATIENT = "patient"  # actor_role of a change the patient made from their own link


def record(action: str, *, dbs=None, **fields) -> AuditEvent:
    """Add an audit event to the session (field names only, never values); ``fields`` as for
    ``event``."""
    row = event(action, **fields)
    if dbs is not None:  # a session of its own (the login attempts), flushed by its caller
        dbs.add(row)
        return row
    return database.insert(row, keep=False)  # append-only: never changed after


def event(
    action: str,
    *,
    actor: StaffUser | None = None,
    actor_role: str | None = None,
    patient_id: int | None = None,
    resource_type: str | None = None,
    resource_id: object = None,
    changed_fields: list[str] | None = None,
    outcome: str = "success",
    reason: str | None = None,
    client: dict | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """A new audit event, not stored yet.

    ``actor_role`` names who acted when no staff user did: ``PATIENT`` for a patient's own
    signed link (their patient_id is on the event); nothing means the system.
    """
    client = client or {}
    return AuditEvent(
        ts=now or utcnow(),
        actor_id=actor.id if actor else None,
        actor_role=actor.role if actor else actor_role,
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        patient_id=patient_id,
        changed_fields=changed_fields,
        outcome=outcome,
        reason=reason,
        ip=client.get("ip"),
        user_agent=(client.get("user_agent") or "")[:300] or None,
    )


def record_about(action: str, row, **kwargs) -> AuditEvent:
    """An audit event about one row that belongs to a patient (a request, an appointment...)."""
    return record(
        action,
        patient_id=row.patient_id,
        resource_type=row.__tablename__,
        resource_id=row.id,
        **kwargs,
    )
