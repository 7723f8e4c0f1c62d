"""The scheduling part of the OpenAPI document (paths and schemas), merged by openapi.py."""

from __future__ import annotations

from clinic.api.openapi_common import (
    BEARER,
    FIELD_ERRORS,
    FORBIDDEN,
    IDEMPOTENCY_KEY,
    JSON,
    NOT_FOUND,
    TOO_MANY,
    UNAUTHORIZED,
    ExampleDates,
    staff_post_responses,
)
from clinic.scheduling.models import AppointmentStatus

_CONFLICT = {
    "description": "The time is taken or not offered (code daily_cap_reached: the type's "
    "per-day cap for the provider is reached that day); already_booked: this intake already "
    "has an appointment; or a retry with the same Idempotency-Key still running (in_progress) "
    "or after the first failed (retry)",
    "content": {
        JSON: {
            "schema": {"$ref": "#/components/schemas/Conflict"},
            "examples": {
                "taken": {"value": {"error": "slot_unavailable"}},
                "daily_cap": {
                    "value": {
                        "error": "slot_unavailable",
                        "code": "daily_cap_reached",
                        "detail": "The day's cap of 4 Procedure appointments with Dr. Anika "
                        "Patel is reached.",
                    }
                },
            },
        }
    },
}
_CHANGE_CONFLICT = {
    **_CONFLICT,
    "description": "The new time is taken or not offered (see createAppointment's 409); "
    "not_allowed: the appointment's status does not allow this (detail says why); or an "
    "Idempotency-Key retry (in_progress, retry)",
}
_APPOINTMENT = {
    "description": "The appointment",
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Appointment"}}},
}
_MOMENT = {"type": "string", "description": "YYYY-MM-DD (clinic-local day) or ISO 8601 datetime"}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
_STATUSES = [str(s) for s in AppointmentStatus]


def _body(schema: dict, example: dict) -> dict:
    return {"required": True, "content": {JSON: {"schema": schema, "example": example}}}


def scheduling_paths(dates: ExampleDates) -> dict:
    patient_booking = {
        "booking_token": "<the booking_token from POST /api/v1/consultation-requests>",
        "appointment_type": "consultation",
        "provider_id": 1,
        "start": dates.booking_start,
    }
    return {
        "/api/v1/appointment-types": {
            "get": {
                "summary": "Appointment types (each with a code)",
                "operationId": "listTypes",
                "responses": {
                    "200": {
                        "description": "Active appointment types",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/AppointmentType"},
                                }
                            }
                        },
                    },
                    "429": TOO_MANY,
                },
            }
        },
        "/api/v1/providers": {
            "get": {
                "summary": "Active providers",
                "operationId": "listProviders",
                "responses": {
                    "200": {
                        "description": "Active providers",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Provider"},
                                }
                            }
                        },
                    },
                    "429": TOO_MANY,
                },
            }
        },
        "/api/v1/slots": {
            "get": {
                "summary": "Free slots; times carry the clinic zone's offset at that instant",
                "operationId": "searchSlots",
                "parameters": [
                    {
                        "name": "appointment_type",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": "consultation",
                    },
                    {
                        "name": "start",
                        "in": "query",
                        "required": True,
                        "schema": _MOMENT,
                        "example": dates.booking_start[:10],
                    },
                    {
                        "name": "end",
                        "in": "query",
                        "required": True,
                        "schema": _MOMENT,
                        "example": dates.reschedule_start[:10],
                    },
                    {
                        "name": "provider_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Slots",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Slot"},
                                }
                            }
                        },
                    },
                    "422": FIELD_ERRORS,
                    "429": TOO_MANY,
                },
            }
        },
        "/api/v1/appointments": {
            "post": {
                "summary": "Book: a patient with a booking_token, or staff (bearer) with a "
                "patient_id",
                "operationId": "createAppointment",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body(
                    {"$ref": "#/components/schemas/AppointmentInput"}, patient_booking
                ),
                "responses": {
                    **staff_post_responses("201", _APPOINTMENT, _CONFLICT),
                    "401": {**UNAUTHORIZED, "description": "A bearer token that is not valid"},
                    "403": {**FORBIDDEN, "description": "The token's role may not book"},
                    "429": TOO_MANY,
                },
            },
            "get": {
                "summary": "Appointments between two dates (staff)",
                "operationId": "listAppointments",
                "security": BEARER,
                "parameters": [
                    {"name": "start", "in": "query", "required": True, "schema": _MOMENT},
                    {"name": "end", "in": "query", "required": True, "schema": _MOMENT},
                    {"name": "provider_id", "in": "query", "schema": {"type": "integer"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": _STATUSES},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Appointments starting in [start, end), by time",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Appointment"},
                                }
                            }
                        },
                    },
                    "401": UNAUTHORIZED,
                    "403": FORBIDDEN,
                    "422": FIELD_ERRORS,
                },
            },
        },
        "/api/v1/appointments/{id}/cancel": {
            "post": {
                "summary": "Cancel (the row is kept with its reason and who cancelled)",
                "operationId": "cancelAppointment",
                "security": BEARER,
                "parameters": _ID + [IDEMPOTENCY_KEY],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["reason"],
                        "properties": {"reason": {"type": "string", "maxLength": 500}},
                    },
                    {"reason": "Patient called: feeling better"},
                ),
                "responses": {
                    **staff_post_responses("200", _APPOINTMENT, _CHANGE_CONFLICT),
                    "404": NOT_FOUND,
                },
            }
        },
        "/api/v1/appointments/{id}/reschedule": {
            "post": {
                "summary": "Move to another start (and provider); bumps the sequence",
                "operationId": "rescheduleAppointment",
                "security": BEARER,
                "parameters": _ID + [IDEMPOTENCY_KEY],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["start"],
                        "properties": {
                            "start": {"type": "string", "format": "date-time"},
                            "provider_id": {"type": "integer"},
                        },
                    },
                    {"start": dates.reschedule_start},
                ),
                "responses": {
                    **staff_post_responses("200", _APPOINTMENT, _CHANGE_CONFLICT),
                    "404": NOT_FOUND,
                },
            }
        },
        "/api/v1/appointments/{id}/status": {
            "post": {
                "summary": "Change the FHIR status along the allowed transitions",
                "description": "The desk statuses record the visit: arrived and checked-in "
                "are accepted from the appointment's day (fulfilled follows them), noshow from "
                "its start; earlier, a 422 says so.",
                "operationId": "appointmentStatus",
                "security": BEARER,
                "parameters": _ID + [IDEMPOTENCY_KEY],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {
                                "type": "string",
                                "enum": _STATUSES,
                            },
                            "reason": {"type": "string", "maxLength": 500},
                        },
                    },
                    {"status": "arrived"},
                ),
                "responses": {
                    **staff_post_responses("200", _APPOINTMENT, _CHANGE_CONFLICT),
                    "404": NOT_FOUND,
                },
            }
        },
    }


def scheduling_schemas() -> dict:
    moment = {"type": "string", "format": "date-time"}
    return {
        "AppointmentType": {
            "type": "object",
            "required": ["code", "name", "duration_minutes"],
            "properties": {
                "code": {"type": "string", "example": "consultation"},
                "name": {"type": "string"},
                "duration_minutes": {"type": "integer"},
                "buffer_before_minutes": {"type": "integer"},
                "buffer_after_minutes": {"type": "integer"},
                "patient_bookable": {"type": "boolean"},
            },
        },
        "Provider": {
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "title": {"type": "string"},
            },
        },
        "Slot": {
            "type": "object",
            "properties": {
                "provider_id": {"type": "integer"},
                "location_id": {"type": "integer"},
                "start": moment,
                "end": moment,
            },
        },
        "AppointmentInput": {
            "type": "object",
            "required": ["appointment_type", "provider_id", "start"],
            "properties": {
                "booking_token": {"type": "string"},
                "patient_id": {"type": "integer"},
                "appointment_type": {"type": "string"},
                "provider_id": {"type": "integer"},
                "start": moment,
            },
        },
        "Appointment": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string"},
                "appointment_type": {"type": "string"},
                "start": moment,
                "end": moment,
                "provider_id": {"type": "integer"},
                "location_id": {"type": "integer"},
                "patient_id": {"type": "integer"},
                "manage_url": {
                    "type": "string",
                    "description": (
                        "The patient's link to see, move or cancel the booking; only in the"
                        " answer to the booking (a patient's or staff's), not in later reads"
                    ),
                },
            },
        },
    }
