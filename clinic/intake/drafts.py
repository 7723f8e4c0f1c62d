"""Intake drafts: answers kept server-side between steps; the browser holds an opaque key."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from clinic.extensions import db
from clinic.intake.fields import SECTIONS, Section
from clinic.intake.models import IntakeDraft


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_draft(now: datetime) -> tuple[IntakeDraft, str]:
    """A new empty draft and the opaque key the browser keeps for it."""
    key = secrets.token_urlsafe(32)
    draft = IntakeDraft(
        key_hash=_hash_key(key), answers={}, answered_at={}, step=0, created_at=now, updated_at=now
    )
    db.session.add(draft)
    db.session.flush()
    return draft, key


def find_draft(
    key: str | None, now: datetime, max_idle: timedelta, *, for_update: bool = False
) -> IntakeDraft | None:
    """The live draft behind a browser's key; ``for_update`` queues concurrent saves of it."""
    if not key:
        return None
    query = select(IntakeDraft).where(IntakeDraft.key_hash == _hash_key(key))
    if for_update:
        query = query.with_for_update()
    draft = db.session.scalars(query).first()
    if draft is None or draft.updated_at < now - max_idle:
        return None
    return draft


def with_step(
    answers: Mapping[str, Any],
    step_index: int,
    values: Mapping[str, Any],
    *,
    sections: tuple[Section, ...] = SECTIONS,
) -> dict[str, Any]:
    """The answers with one step's replaced by its newly checked values."""
    # by id: a draft may hold answers to questions the form no longer has (a renamed field,
    # an ODI pack unloaded); they stay, and the full check at the end ignores them
    own = {f.id for f in sections[step_index].fields}
    out = {k: v for k, v in answers.items() if k not in own}
    out.update(values)
    return out


def save_step(
    draft: IntakeDraft,
    step_index: int,
    values: Mapping[str, Any],
    now: datetime,
    *,
    complete: bool = True,
    sections: tuple[Section, ...] = SECTIONS,
) -> None:
    """Keep one step's checked answers; later steps are kept too unless now hidden.

    An incomplete step (kept for a red flag on it) is saved but not passed: the patient
    comes back to it.
    """
    section = sections[step_index]
    draft.answers = with_step(draft.answers, step_index, values, sections=sections)
    draft.answered_at = {**draft.answered_at, section.id: now.isoformat()}
    if complete:
        draft.step = max(draft.step, step_index + 1)
    draft.updated_at = now
    db.session.flush()


def purge_stale_drafts(now: datetime, max_idle: timedelta) -> int:
    """Delete drafts nobody has touched for a while (they hold patient answers)."""
    result = db.session.execute(delete(IntakeDraft).where(IntakeDraft.updated_at < now - max_idle))
    return result.rowcount or 0
