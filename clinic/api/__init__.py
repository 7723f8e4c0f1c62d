"""The JSON API under /api/v1."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from clinic.api import consultation_requests, followup, openapi, scheduling  # noqa: E402,F401
