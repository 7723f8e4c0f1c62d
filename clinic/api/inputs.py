"""Reading API input: the JSON body, and text the database can store."""

from __future__ import annotations

from flask import request

from clinic.errors import ValidationFailed
from clinic.limits import storable


def json_body() -> dict:
    """The request's JSON object, or a 422 that says what is wrong with the body."""
    if not request.is_json:
        raise ValidationFailed(
            {"_body": ["Send a JSON object with Content-Type: application/json."]}
        )
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the parser gives up on deep nesting with this, not a ValueError
        raise ValidationFailed({"_body": ["The JSON is nested too deeply."]}) from None
    if not isinstance(body, dict):
        raise ValidationFailed({"_body": ["The body must be a JSON object."]})
    return body


def optional_text(body: dict, name: str, *, max_length: int = 500) -> str:
    """A free-text field of a JSON body ("" when absent or null), else a 422 on that field."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed({name: ["Must be text."]})
    if not storable(value):
        raise ValidationFailed({name: ["Remove the special characters."]})
    if len(value) > max_length:
        raise ValidationFailed({name: [f"Use at most {max_length} characters."]})
    return value
