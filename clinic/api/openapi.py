"""GET /api/v1/openapi.json, generated from the same field definitions the form uses."""

from __future__ import annotations

from flask import current_app, jsonify

from clinic import http
from clinic.api import bp
from clinic.api.openapi_common import (
    FIELD_ERRORS,
    FORBIDDEN,
    IDEMPOTENCY_KEY,
    NOT_FOUND,
    RETRY_CONFLICT,
    TOO_LARGE,
    TOO_MANY,
    UNAUTHORIZED,
    example_dates,
    shared_schemas,
)
from clinic.api.openapi_followup import followup_paths, followup_schemas
from clinic.api.openapi_scheduling import scheduling_paths, scheduling_schemas
from clinic.followup.questions import current_odi_pack
from clinic.intake import odi
from clinic.intake.fields import FORM_VERSION, Field

EXAMPLE_REQUEST = {
    "rf_urinary_retention": "no",
    "rf_urinary_incontinence": "no",
    "rf_bowel": "no",
    "rf_saddle_numbness": "no",
    "rf_progressive_weakness": "no",
    "rf_bilateral_new": "no",
    "rf_sexual_dysfunction": "no",
    "rf_fever": "no",
    "rf_cancer_history": "no",
    "rf_weight_loss": "no",
    "rf_trauma": "no",
    "rf_infection_risk": "no",
    "rf_night_pain": "no",
    "completed_by": "self",
    "first_name": "Margaret",
    "last_name": "Okafor",
    "date_of_birth": "1952-04-17",
    "sex_at_birth": "female",
    "preferred_contact": "email",
    "email": "margaret.okafor@example.com",
    "phone_mobile": "555-201-0123",
    "voicemail_ok": True,
    "preferred_language": "en",
    "insurance_type": "medicare_traditional",
    "payer_name": "Medicare",
    "symptom_locations": ["low_back", "buttock", "thigh"],
    "symptom_laterality": "both",
    "symptom_types": ["pain", "heaviness_fatigue"],
    "symptom_duration": "1_2y",
    "symptom_onset": "gradual",
    "worse_standing": True,
    "worse_walking": True,
    "relief_sitting": True,
    "relief_flexion": True,
    "max_standing_minutes": 10,
    "max_walking_minutes": 5,
    "nprs_back_now": 6,
    "nprs_leg_now": 7,
    "nprs_back_avg7d": 6,
    "nprs_leg_avg7d": 7,
    "tx_physical_therapy": True,
    "tx_pt_weeks": 8,
    "tx_home_exercise": True,
    "tx_meds": ["acetaminophen", "nsaid"],
    "tx_opioid_current": False,
    "tx_esi": True,
    "tx_esi_count": 2,
    "tx_prior_mild": False,
    "tx_spacer": False,
    "tx_lumbar_surgery": False,
    "imaging_type": "mri",
    "imaging_date": "2026-05",
    "anticoag_any": False,
    "bleeding_disorder": False,
    "pregnancy_possible": "not_applicable",
    "allergy_contrast": "no",
    "allergy_local_anesthetic": "no",
    "active_infection": False,
    "can_lie_prone": "yes",
    "ack_not_emergency": True,
    "ack_npp": True,
    "consent_email": True,
    "attest_accurate": True,
    "e_signature": "Margaret Okafor",
}


def field_schema(field: Field) -> dict:
    kind = field.kind
    if kind in {"int", "decimal"}:
        out: dict = {"type": "integer" if kind == "int" else "number"}
        if field.min is not None:
            out["minimum"] = field.min
        if field.max is not None:
            out["maximum"] = field.max
    elif kind == "ack" and field.required is True:
        out = {"type": "boolean", "enum": [True]}  # the API refuses an unticked box
    elif kind in {"bool", "ack"}:
        out = {"type": "boolean"}
    elif kind == "choice" and field.extra.get("int_codes"):
        out = {"type": "integer", "enum": [int(code) for code in field.choice_codes]}
    elif kind == "choice":
        out = {"type": "string", "enum": list(field.choice_codes)}
    elif kind == "multi":
        # no uniqueItems: the API accepts a code twice and stores it once
        out = {"type": "array", "items": {"type": "string", "enum": list(field.choice_codes)}}
    elif kind == "date":
        out = {"type": "string", "format": "date"}
    elif kind == "month":
        out = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"}
    elif kind == "email":
        out = {"type": "string", "format": "email", "maxLength": 254}
    elif kind == "phone":
        out = {"type": "string", "description": "US 10-digit or E.164"}
    else:
        out = {"type": "string"}
        if field.max_length:
            out["maxLength"] = field.max_length
    description = field.label
    if field.extra.get("odi"):
        # the section's text is the clinic's licensed pack, not published here
        description = f"ODI section {field.id.removeprefix('odi_')}: the statement chosen, 0-5"
    if "min_answered" in field.extra:
        description += f" (answer at least {field.extra['min_answered']} of the ODI's sections)"
    if kind == "multi":
        description += " (a code given twice counts once)"
    if isinstance(field.required, dict):
        description += " (required when: see x-required-when)"
        out["x-required-when"] = field.required
    if field.show_when:
        out["x-shown-when"] = field.show_when
    out["description"] = description
    if "default" in field.extra:
        out["default"] = field.extra["default"]
    if field.required is not True:
        out["nullable"] = True  # null means "not answered": refused only for required fields
    return out


def _always_required(field: Field) -> bool:
    """Required in every body: a field with a default may be left out, never sent as null."""
    return field.required is True and "default" not in field.extra


def build_spec() -> dict:
    pack = current_odi_pack()
    fields = odi.fields_for(pack).values()
    required = [f.id for f in fields if _always_required(f)]
    example = dict(EXAMPLE_REQUEST)
    if pack is not None:  # the clinic asks the ODI: the example answers it
        example |= {f.id: 2 for f in fields if f.extra.get("odi")}
    dates = example_dates(http.now(), http.clinic_tz())
    errors = {
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"{current_app.config['CLINIC_NAME']} API",
            "version": "1",
            "description": f"Intake form version {FORM_VERSION}. Field names are the "
            "domain spec's field_ids; values are canonical codes.",
        },
        "servers": [{"url": current_app.config["BASE_URL"]}],
        "paths": {
            **scheduling_paths(dates),
            **followup_paths(dates),
            "/api/v1/consultation-requests": {
                "post": {
                    "summary": "Submit a consultation request (the intake)",
                    "operationId": "createConsultationRequest",
                    "parameters": [IDEMPOTENCY_KEY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ConsultationRequestInput"},
                                "example": example,
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Stored",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "$ref": "#/components/schemas/ConsultationRequestCreated"
                                    }
                                }
                            },
                        },
                        "409": RETRY_CONFLICT,
                        "413": TOO_LARGE,
                        "422": FIELD_ERRORS,
                        "429": TOO_MANY,
                    },
                }
            },
            "/api/v1/consultation-requests/{id}": {
                "get": {
                    "summary": "A request as the caller's role may see it (staff)",
                    "operationId": "getConsultationRequest",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The request; answers and signals as the role may "
                            "see them (red_flags for clinicians only)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ConsultationRequest"}
                                }
                            },
                        },
                        "401": UNAUTHORIZED,
                        "403": {**FORBIDDEN, "description": "The role may not see requests"},
                        "404": {**NOT_FOUND, "description": "No such request"},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ConsultationRequestInput": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": required,
                    "properties": {f.id: field_schema(f) for f in fields},
                },
                "ConsultationRequestCreated": {
                    "type": "object",
                    "required": ["id", "patient_id", "triage"],
                    "properties": {
                        "id": {"type": "integer"},
                        "patient_id": {"type": "integer"},
                        "triage": {"type": "string", "enum": ["emergency", "urgent", "routine"]},
                        "booking_token": {
                            "type": "string",
                            "description": "Absent for emergency triage",
                        },
                    },
                },
                "ConsultationRequest": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "patient_id": {"type": "integer"},
                        "status": {"type": "string"},
                        "triage": {"type": "string", "enum": ["emergency", "urgent", "routine"]},
                        "red_flag": {"type": "boolean"},
                        "red_flags": {"type": "array", "items": {"type": "object"}},
                        "submitted_at": {"type": "string", "format": "date-time"},
                        "form_version": {"type": "string"},
                        "rules_version": {"type": "string"},
                        "answers": {"type": "object"},
                        "candidacy_signals": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Errors": errors,
                **shared_schemas(),
                **scheduling_schemas(),
                **followup_schemas(),
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_spec())
