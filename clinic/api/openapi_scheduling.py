"""The scheduling part of the OpenAPI document (paths and schemas), merged by openapi.py."""

from __future__ import annotations

EXAMPLE_PATIENT_BOOKING = {
    "booking_token": "<the booking_token from POST /api/v1/consultation-requests>",
    "appointment_type": "consultation",
    "provider_id": 1,
    "start": "2026-12-02T09:00:00-05:00",
}
EXAMPLE_STAFF_BOOKING = {
    "patient_id": 1,
    "appointment_type": "procedure",
    "provider_id": 1,
    "start": "2026-12-03T13:30:00-05:00",
}

_JSON = "application/json"
_BEARER = [{"bearer": []}]
_ERRORS = {
    "description": "Field errors",
    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Errors"}}},
}
_CONFLICT = {
    "description": "The time is taken or not offered",
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string", "enum": ["slot_unavailable"]}},
            },
            "example": {"error": "slot_unavailable"},
        }
    },
}
_APPOINTMENT = {
    "description": "The appointment",
    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Appointment"}}},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A retried POST with the same key and body gets the first answer",
    "schema": {"type": "string", "maxLength": 200},
}
_MOMENT = {"type": "string", "description": "YYYY-MM-DD (clinic-local day) or ISO 8601 datetime"}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]


def _body(schema: dict, example: dict) -> dict:
    return {"required": True, "content": {_JSON: {"schema": schema, "example": example}}}


def scheduling_paths() -> dict:
    return {
        "/api/v1/appointment-types": {
            "get": {
                "summary": "Appointment types (each with a code)",
                "operationId": "listTypes",
                "responses": {"200": {"description": "Types"}},
            }
        },
        "/api/v1/providers": {
            "get": {
                "summary": "Active providers",
                "operationId": "listProviders",
                "responses": {"200": {"description": "Providers"}},
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
                        "example": "2026-12-01",
                    },
                    {
                        "name": "end",
                        "in": "query",
                        "required": True,
                        "schema": _MOMENT,
                        "example": "2026-12-07",
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
                            _JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Slot"},
                                }
                            }
                        },
                    },
                    "422": _ERRORS,
                },
            }
        },
        "/api/v1/appointments": {
            "post": {
                "summary": "Book: a patient with a booking_token, or staff (bearer) with a "
                "patient_id",
                "operationId": "createAppointment",
                "parameters": [_IDEMPOTENCY],
                "requestBody": _body(
                    {"$ref": "#/components/schemas/AppointmentInput"}, EXAMPLE_PATIENT_BOOKING
                ),
                "responses": {
                    "201": _APPOINTMENT,
                    "401": {"description": "Bad token"},
                    "403": {"description": "Role may not book"},
                    "409": _CONFLICT,
                    "422": _ERRORS,
                },
            },
            "get": {
                "summary": "Appointments between two dates (staff)",
                "operationId": "listAppointments",
                "security": _BEARER,
                "parameters": [
                    {"name": "start", "in": "query", "required": True, "schema": _MOMENT},
                    {"name": "end", "in": "query", "required": True, "schema": _MOMENT},
                    {"name": "provider_id", "in": "query", "schema": {"type": "integer"}},
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "Appointments"},
                    "401": {"description": "No or bad token"},
                },
            },
        },
        "/api/v1/appointments/{id}/cancel": {
            "post": {
                "summary": "Cancel (the row is kept with its reason and who cancelled)",
                "operationId": "cancelAppointment",
                "security": _BEARER,
                "parameters": _ID + [_IDEMPOTENCY],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["reason"],
                        "properties": {"reason": {"type": "string", "maxLength": 500}},
                    },
                    {"reason": "Patient called: feeling better"},
                ),
                "responses": {"200": _APPOINTMENT, "409": _CONFLICT, "422": _ERRORS},
            }
        },
        "/api/v1/appointments/{id}/reschedule": {
            "post": {
                "summary": "Move to another start (and provider); bumps the sequence",
                "operationId": "rescheduleAppointment",
                "security": _BEARER,
                "parameters": _ID + [_IDEMPOTENCY],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["start"],
                        "properties": {
                            "start": {"type": "string", "format": "date-time"},
                            "provider_id": {"type": "integer"},
                        },
                    },
                    {"start": "2026-12-04T10:00:00-05:00"},
                ),
                "responses": {"200": _APPOINTMENT, "409": _CONFLICT, "422": _ERRORS},
            }
        },
        "/api/v1/appointments/{id}/status": {
            "post": {
                "summary": "Change the FHIR status along the allowed transitions",
                "operationId": "appointmentStatus",
                "security": _BEARER,
                "parameters": _ID,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {
                                "type": "string",
                                "enum": [
                                    "proposed",
                                    "pending",
                                    "booked",
                                    "arrived",
                                    "checked-in",
                                    "fulfilled",
                                    "cancelled",
                                    "noshow",
                                    "entered-in-error",
                                    "waitlist",
                                ],
                            },
                            "reason": {"type": "string"},
                        },
                    },
                    {"status": "arrived"},
                ),
                "responses": {"200": _APPOINTMENT, "422": _ERRORS},
            }
        },
    }


def scheduling_schemas() -> dict:
    moment = {"type": "string", "format": "date-time"}
    return {
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
                "manage_url": {"type": "string"},
            },
        },
    }
