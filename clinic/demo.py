"""A believable demo clinic for `flask --app clinic seed-demo` and `make run`."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from clinic.api.openapi import EXAMPLE_REQUEST
from clinic.intake import schema
from clinic.intake import services as intake_services
from clinic.intake.rules import load_rules
from clinic.staff import services as staff_services

STAFF = [
    ("frontdesk@clinic.example", "front_desk", "Dana Whitfield"),
    ("nurse@clinic.example", "nurse", "Luis Ortega, RN"),
    ("dr.patel@clinic.example", "physician", "Dr. Anika Patel"),
    ("dr.brennan@clinic.example", "physician", "Dr. Thomas Brennan"),
    ("dr.nakamura@clinic.example", "physician", "Dr. Yui Nakamura"),
    ("billing@clinic.example", "billing", "Carol Jensen"),
    ("admin@clinic.example", "admin", "Sam Reyes"),
]

PATIENTS = [
    # first, last, dob, hours ago, overrides
    ("Margaret", "Okafor", "1952-04-17", 30, {}),
    (
        "Harold",
        "Lindqvist",
        "1946-11-02",
        5,
        {"rf_fever": "new", "sex_at_birth": "male", "pregnancy_possible": None},
    ),
    (
        "Rosa",
        "Delgado",
        "1958-07-23",
        50,
        {
            "insurance_type": "commercial",
            "payer_name": "Aetna",
            "anticoag_any": True,
            "anticoag_agents": ["apixaban"],
            "anticoag_reason": ["afib"],
            "anticoag_prescriber": "Dr. Feld",
        },
    ),
    (
        "Walter",
        "Nguyen",
        "1949-01-30",
        2,
        {"rf_saddle_numbness": "new", "sex_at_birth": "male", "pregnancy_possible": None},
    ),
    (
        "Evelyn",
        "Marsh",
        "1961-09-12",
        75,
        {"symptom_duration": "6w_3m", "imaging_type": "none", "imaging_date": None},
    ),
    (
        "George",
        "Abernathy",
        "1944-05-05",
        120,
        {
            "tx_lumbar_surgery": True,
            "tx_surgery_types": ["laminectomy_laminotomy"],
            "tx_surgery_levels": ["L4-5"],
            "sex_at_birth": "male",
            "pregnancy_possible": None,
        },
    ),
    (
        "Irene",
        "Kowalski",
        "1955-02-14",
        10,
        {"rf_night_pain": "worsening", "rf_weight_loss": "new"},
    ),
    (
        "Frank",
        "Osei",
        "1950-08-08",
        200,
        {
            "relief_standing_still": True,
            "pad_circulation": True,
            "sex_at_birth": "male",
            "pregnancy_possible": None,
        },
    ),
]


def seed(*, password: str, now: datetime) -> str:
    """Create the demo staff and requests; return a summary."""
    for email, role, name in STAFF:
        staff_services.create_staff(email, role, password, full_name=name, now=now)
    rules = load_rules(current_app.config["INTAKE_RULES_DIR"])
    tz = ZoneInfo(current_app.config["CLINIC_TIMEZONE"])
    for first, last, dob, hours_ago, overrides in PATIENTS:
        values = {
            **EXAMPLE_REQUEST,
            "first_name": first,
            "last_name": last,
            "date_of_birth": dob,
            "email": f"{first}.{last}@example.com".lower(),
            "e_signature": f"{first} {last}",
            **overrides,
        }
        values, _ = schema.from_json({k: v for k, v in values.items() if v is not None})
        intake_services.submit_request(
            values,
            source="patient",
            rules=rules,
            now=now - timedelta(hours=hours_ago),
            tz=tz,
            client={"ip": "127.0.0.1", "user_agent": "seed-demo"},
        )
    return (
        f"Seeded {len(STAFF)} staff users ({', '.join(e for e, _, _ in STAFF)}) "
        f"and {len(PATIENTS)} consultation requests."
    )
