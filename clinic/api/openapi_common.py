"""Pieces every part of the OpenAPI document shares: error answers, headers, dated examples."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from clinic.scheduling.idempotency_records import RETENTION

JSON = "application/json"
BEARER = [{"bearer": []}]


def _error(description: str, example: dict) -> dict:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}, "example": example}},
    }


FIELD_ERRORS = {
    "description": "Field errors",
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Errors"}}},
}
UNAUTHORIZED = _error("No or bad bearer token", {"error": "unauthorized"})
FORBIDDEN = _error("The token's role may not do this", {"error": "forbidden"})
NOT_FOUND = _error("No such record", {"error": "not_found"})
TOO_LARGE = _error(
    "Body too large",
    {"error": "request_entity_too_large", "errors": {"_body": ["The request body is too large."]}},
)
TOO_MANY = _error("Too many requests (rate limited)", {"error": "too_many_requests"})
RETRY_CONFLICT = {
    "description": "A retry with the same Idempotency-Key while the first is still running, or "
    "after it failed",
    "content": {
        JSON: {
            "schema": {"$ref": "#/components/schemas/Conflict"},
            "example": {"error": "in_progress"},
        }
    },
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A retried POST with the same key and body gets the first answer (with the "
    "header Idempotent-Replayed: true); the same key with another body is a 422. Keys are per "
    "caller: per bearer token, for a patient's booking per booking_token, and for an intake "
    "sent without a token per body (another body is then another request, not a 422). A key "
    f"expires {RETENTION // timedelta(hours=1)} hours after its first request: a retry after "
    "that is a new request",
    "schema": {"type": "string", "maxLength": 200},
}


def staff_post_responses(ok: str, ok_response: dict, conflict: dict | None = None) -> dict:
    """The answers of a staff POST with a JSON body and an Idempotency-Key."""
    return {
        ok: ok_response,
        "401": UNAUTHORIZED,
        "403": FORBIDDEN,
        "409": conflict or RETRY_CONFLICT,
        "413": TOO_LARGE,
        "422": FIELD_ERRORS,
    }


def shared_schemas() -> dict:
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "Conflict": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "string",
                    "enum": [
                        "slot_unavailable",
                        "already_booked",
                        "not_allowed",
                        "in_progress",
                        "retry",
                    ],
                },
                "code": {
                    "type": "string",
                    "enum": ["daily_cap_reached"],
                    "description": "Why a time is unavailable, when it is not simply taken",
                },
                "detail": {"type": "string", "description": "A message for the person"},
            },
        },
    }


@dataclass(frozen=True)
class ExampleDates:
    """Request examples that work whenever the document is fetched (the clinic's own clock)."""

    booking_start: str  # a weekday morning a week or more ahead, in the clinic's offset
    reschedule_start: str  # a later weekday morning
    procedure_day: str  # yesterday: a date of service may be neither future nor a year old


def _weekday_on_or_after(day: date) -> date:
    while day.weekday() > 3:  # Monday to Thursday: the days most practices hold clinics
        day += timedelta(days=1)
    return day


def example_dates(now: datetime, tz: ZoneInfo) -> ExampleDates:
    today = now.astimezone(tz).date()
    book_day = _weekday_on_or_after(today + timedelta(days=7))
    move_day = _weekday_on_or_after(book_day + timedelta(days=1))
    return ExampleDates(
        booking_start=datetime.combine(book_day, time(9), tzinfo=tz).isoformat(),
        reschedule_start=datetime.combine(move_day, time(10), tzinfo=tz).isoformat(),
        procedure_day=(today - timedelta(days=1)).isoformat(),
    )
