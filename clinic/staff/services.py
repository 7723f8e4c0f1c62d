"""Staff accounts, login sessions and API tokens. Services flush, never commit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from clinic import audit
from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.models import ApiToken, Role, StaffSession, StaffUser

# OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB memory, 2 iterations, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# A hash to verify against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed({"password": [f"Use at least {MIN_PASSWORD_LENGTH} characters."]})
    if len(password) > 256:
        raise ValidationFailed({"password": ["Use at most 256 characters."]})


def create_staff(
    email: str,
    role: str,
    password: str | None,
    *,
    full_name: str = "",
    actor: StaffUser | None = None,
    now: datetime,
) -> StaffUser:
    """A new staff account; without a password it can't log in until one is set."""
    email = (email or "").strip().lower()
    errors: dict[str, list[str]] = {}
    if "@" not in email or len(email) > 254:
        errors["email"] = ["Enter a valid email address."]
    elif db.session.scalar(select(StaffUser.id).where(func.lower(StaffUser.email) == email)):
        errors["email"] = ["A staff user with this email exists."]
    if role not in Role.__members__.values():
        errors["role"] = [f"Role must be one of: {', '.join(r.value for r in Role)}."]
    if errors:
        raise ValidationFailed(errors)
    if password is not None:
        _check_password(password)
    user = StaffUser(
        email=email,
        role=role,
        full_name=full_name.strip()[:200],
        password_hash=hash_password(password) if password else None,
        created_at=now,
    )
    db.session.add(user)
    db.session.flush()
    audit.record(
        "permission_change",
        actor=actor,
        resource_type="staff_user",
        resource_id=user.id,
        changed_fields=["created", "role"],
        now=now,
    )
    return user


def set_password(user: StaffUser, password: str, *, actor: StaffUser | None, now: datetime) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    end_all_sessions(user, "password", now)
    audit.record(
        "update",
        actor=actor,
        resource_type="staff_user",
        resource_id=user.id,
        changed_fields=["password"],
        now=now,
    )
    db.session.flush()


def update_staff(
    user: StaffUser, *, role: str, active: bool, actor: StaffUser, now: datetime
) -> None:
    """Change a user's role or switch the account off (which ends its sessions)."""
    if role not in Role.__members__.values():
        raise ValidationFailed({"role": ["Choose a role from the list."]})
    if user.id == actor.id and (role != user.role or not active):
        raise ValidationFailed({"role": ["You can't change your own role or switch yourself off."]})
    changed = [
        name
        for name, old, new in (("role", user.role, role), ("active", user.active, active))
        if old != new
    ]
    user.role, user.active = role, active
    if changed:
        end_all_sessions(user, "account_changed", now)
        if not active:  # switching an account back on must not revive its old tokens
            revoke_api_tokens(user, actor=actor, now=now)
        audit.record(
            "permission_change",
            actor=actor,
            resource_type="staff_user",
            resource_id=user.id,
            changed_fields=changed,
            now=now,
        )
    db.session.flush()


def authenticate(
    email: str, password: str, *, now: datetime, client: dict | None = None
) -> StaffUser | None:
    """The active user with this email and password, or None; both outcomes are audited."""
    email = (email or "").strip().lower()
    user = db.session.scalars(select(StaffUser).where(func.lower(StaffUser.email) == email)).first()
    ok = False
    try:
        ok = _hasher.verify(
            user.password_hash if user and user.password_hash else _DUMMY_HASH, password or ""
        )
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active and user.password_hash is not None
    if ok and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record(
        "login" if ok else "login_failed",
        actor=user if user else None,
        outcome="success" if ok else "failure",
        resource_type="staff_user",
        resource_id=user.id if user else None,
        client=client,
        now=now,
    )
    db.session.flush()
    return user if ok else None


def start_session(user: StaffUser, now: datetime) -> StaffSession:
    session = StaffSession(
        id=secrets.token_urlsafe(32), user_id=user.id, created_at=now, last_seen_at=now
    )
    db.session.add(session)
    db.session.flush()
    return session


def active_session(
    session_id: str, *, now: datetime, idle: timedelta, dbs=None, touch: bool = True
) -> StaffSession | None:
    """The session if it is live; an idle one is ended here for good.

    ``dbs`` lets the login check run in its own short transaction, apart from the request's.
    ``touch=False`` checks without counting the request as activity (a page's automatic
    idle check, which would otherwise keep a session alive with nobody at the desk).
    """
    dbs = dbs or db.session
    session = dbs.get(StaffSession, session_id)
    if session is None or session.ended_at is not None or not session.user.active:
        return None
    if session.last_seen_at < now - idle:
        end_session(session, "idle", now, dbs=dbs)
        return None
    if touch and now - session.last_seen_at > timedelta(seconds=30):
        session.last_seen_at = now
    return session


def end_session(
    session: StaffSession, reason: str, now: datetime, client: dict | None = None, dbs=None
) -> None:
    dbs = dbs or db.session
    if session.ended_at is None:
        session.ended_at = now
        session.end_reason = reason
        audit.record(
            "logout",
            actor=session.user,
            resource_type="staff_session",
            reason=reason,
            client=client,
            now=now,
            dbs=dbs,
        )
    dbs.flush()


def end_all_sessions(user: StaffUser, reason: str, now: datetime) -> None:
    for session in db.session.scalars(
        select(StaffSession).where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
    ):
        end_session(session, reason, now)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(user: StaffUser, *, now: datetime) -> str:
    """A new bearer token for the user; only its hash is stored."""
    token = "clin_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token), created_at=now))
    audit.record("create", actor=user, resource_type="api_token", now=now)
    db.session.flush()
    return token


def revoke_api_tokens(user: StaffUser, *, actor: StaffUser | None, now: datetime) -> int:
    """Revoke every live bearer token of the user; returns how many there were."""
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
        audit.record(
            "delete", actor=actor, resource_type="api_token", resource_id=token.id, now=now
        )
    db.session.flush()
    return len(tokens)


def live_token_counts() -> dict[int, int]:
    """Live bearer tokens per user id (for the users page)."""
    rows = db.session.execute(
        select(ApiToken.user_id, func.count())
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
    )
    return dict(rows.all())


def user_for_token(token: str) -> StaffUser | None:
    row = db.session.scalars(
        select(ApiToken).where(
            ApiToken.token_hash == _token_hash(token), ApiToken.revoked_at.is_(None)
        )
    ).first()
    if row is None or not row.user.active:
        return None
    return row.user
