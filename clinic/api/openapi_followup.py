"""The follow-up part of the OpenAPI document (procedures, a patient's messages)."""

from __future__ import annotations

from clinic.api.openapi_common import (
    BEARER,
    FORBIDDEN,
    IDEMPOTENCY_KEY,
    JSON,
    NOT_FOUND,
    UNAUTHORIZED,
    ExampleDates,
    staff_post_responses,
)


def followup_paths(dates: ExampleDates) -> dict:
    procedure = {"patient_id": 1, "performed_on": dates.procedure_day, "provider_id": 1}
    return {
        "/api/v1/procedures": {
            "post": {
                "summary": "Record a procedure; answers with the follow-up plan it created",
                "operationId": "createProcedure",
                "security": BEARER,
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {"$ref": "#/components/schemas/ProcedureInput"},
                            "example": procedure,
                        }
                    },
                },
                "responses": staff_post_responses(
                    "201",
                    {
                        "description": "The procedure and its follow-up timepoints",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Procedure"}}},
                    },
                ),
            }
        },
        "/api/v1/patients/{patient_id}/notifications": {
            "get": {
                "summary": "A patient's messages: kind, due time, status, attempts (no content)",
                "operationId": "listPatientNotifications",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "patient_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The messages, by due time",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Notification"},
                                }
                            }
                        },
                    },
                    "401": UNAUTHORIZED,
                    "403": FORBIDDEN,
                    "404": {**NOT_FOUND, "description": "No such patient"},
                },
            }
        },
    }


def followup_schemas() -> dict:
    day = {"type": "string", "format": "date"}
    moment = {"type": "string", "format": "date-time"}
    return {
        "ProcedureInput": {
            "type": "object",
            "required": ["patient_id", "performed_on", "provider_id"],
            "properties": {
                "patient_id": {"type": "integer"},
                "performed_on": day,
                "provider_id": {"type": "integer"},
            },
        },
        "Procedure": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "patient_id": {"type": "integer"},
                "provider_id": {"type": "integer"},
                "performed_on": day,
                "plan_version": {"type": "string"},
                "follow_up": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "label": {"type": "string"},
                            "due_on": day,
                            "window_start": day,
                            "window_end": day,
                            "status": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Notification": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"type": "string"},
                "template": {"type": "string"},
                "channel": {"type": "string"},
                "due_at": moment,
                "status": {
                    "type": "string",
                    "enum": ["pending", "sending", "sent", "failed", "cancelled", "skipped"],
                },
                "attempts": {"type": "integer"},
                "last_error": {"type": "string", "nullable": True},
                "sent_at": {**moment, "nullable": True},
                "message_id": {"type": "string"},
            },
        },
    }
