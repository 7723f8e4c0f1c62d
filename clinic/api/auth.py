"""Staff callers of the API: a bearer token and a role that has the permission."""

from __future__ import annotations

from flask import abort

from clinic.models import StaffUser
from clinic.staff.auth import bearer_user
from clinic.staff.roles import can


def staff_or_abort(permission: str) -> StaffUser:
    """The token's staff user: 401 without a valid token, 403 without the permission."""
    user = bearer_user()
    if user is None:
        abort(401)
    if not can(user, permission):
        abort(403)
    return user
