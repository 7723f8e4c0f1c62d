"""Domain exceptions and the HTML/JSON error handlers."""

from __future__ import annotations

import logging
import traceback

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A business rule refused the action; the message is safe to show."""


class ValidationFailed(DomainError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("validation failed")
        self.errors = errors


class NotAllowed(DomainError):
    pass


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ValidationFailed)
    def validation_failed(exc: ValidationFailed):
        return jsonify({"errors": exc.errors}), 422

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        # the exception's own headers (a 405's Allow), not its HTML's Content-Type
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            body = {"error": exc.name.lower().replace(" ", "_")}
            if code == 413:
                body["errors"] = {"_body": ["The request body is too large."]}
            if code == 401:
                headers.append(("WWW-Authenticate", "Bearer"))
            return jsonify(body), code, headers
        return render_template("errors/error.html", code=code, name=exc.name), code, headers

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # The type only: messages may quote patient data.
        logger.error(
            "unhandled %s on %s %s\n%s",
            type(exc).__name__,
            request.method,
            request.url_rule.rule if request.url_rule else "?",
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        if wants_json():
            return jsonify({"error": "internal_error"}), 500
        return render_template("errors/error.html", code=500, name="Something went wrong"), 500
