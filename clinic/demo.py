"""A believable demo clinic for `flask --app clinic seed-demo` and `make run`."""

from __future__ import annotations

from datetime import datetime, time, timedelta
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
            "tx_surgery_count": "one",
            "tx_surgery_1_types": ["laminectomy_laminotomy"],
            "tx_surgery_1_levels": ["L4-5"],
            "tx_surgery_1_year": 2015,
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


LOCATIONS = [
    dict(
        name="Riverside Clinic - Main Street",
        address_line1="120 Main Street",
        city="Springfield",
        state="MA",
        zip="01103",
        phone="(555) 010-0100",
    ),
    dict(
        name="Riverside Clinic - Oak Park",
        address_line1="45 Oak Park Drive",
        address_line2="Suite 200",
        city="Chicopee",
        state="MA",
        zip="01020",
        phone="(555) 010-0200",
    ),
]
# provider (staff email), then (location index, weekdays, start, end) blocks; lunch is a gap
PROVIDER_HOURS = {
    "dr.patel@clinic.example": [
        (0, (0, 1, 2, 3), "08:00", "12:00"),
        (0, (0, 1, 2, 3), "13:00", "17:00"),
    ],
    "dr.brennan@clinic.example": [(0, (0, 2, 4), "09:00", "12:30"), (1, (1, 3), "08:30", "16:00")],
    "dr.nakamura@clinic.example": [
        (1, (0, 1, 2, 3, 4), "07:30", "11:30"),
        (1, (0, 1, 2, 3, 4), "12:30", "15:30"),
    ],
}


def seed(*, password: str, now: datetime) -> str:
    """Create the demo staff, schedule and requests; return a summary."""
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
    booked = _seed_schedule(now, tz)
    _seed_follow_up(now, tz)
    _seed_waitlist(now)
    return (
        f"Seeded {len(LOCATIONS)} locations, {len(PROVIDER_HOURS)} providers, {booked} "
        f"appointments, {len(STAFF)} staff users ({', '.join(e for e, _, _ in STAFF)}), "
        f"{len(PATIENTS)} consultation requests, one procedure with its follow-up plan and "
        "a waitlist with a freed time to offer."
    )


# (timepoint code, back pain, leg pain, walking minutes, standing minutes, global change)
DEMO_CHECKINS = [
    ("FU-D1", 4, 3, 10, 10, 5),
    ("FU-D10", 3, 3, 20, 15, 6),
    ("FU-W6", 3, 2, 35, 25, 6),
]
DEMO_PROCEDURE_DAYS_AGO = 45


def _seed_follow_up(now: datetime, tz: ZoneInfo) -> None:
    """A procedure six weeks ago with three answered check-ins, for the outcome chart."""
    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.followup import checkin, questions
    from clinic.followup import services as followup
    from clinic.intake.models import ConsultationRequest
    from clinic.scheduling.models import Provider

    request = db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.triage == "routine")
        .order_by(ConsultationRequest.id.desc())
    ).first()
    provider = db.session.scalars(select(Provider).order_by(Provider.id)).first()
    performed = now - timedelta(days=DEMO_PROCEDURE_DAYS_AGO)
    # Their intake and consultation came before the procedure: the chart's baseline.
    request.submitted_at = performed - timedelta(days=30)
    intake_services.mark_booked(request, now=performed - timedelta(days=29))
    procedure = followup.record_procedure(
        request.patient,
        provider,
        performed.astimezone(tz).date(),
        actor=None,
        now=performed,
    )
    client = {"ip": "127.0.0.1", "user_agent": "seed-demo"}
    by_code = {tp.code: tp for tp in procedure.timepoints}
    for code, back, leg, walk, stand, change in DEMO_CHECKINS:
        timepoint = by_code[code]
        answered = datetime.combine(timepoint.due_on, time(11), tz)
        fields = questions.screen_fields(timepoint.wound_questions, checkin.outcomes())
        screen = {field.id: "no" for field in fields}
        checkin.submit_red_flags(timepoint, screen, now=answered, client=client)
        answers = {
            "nprs_back": str(back),
            "nprs_leg": str(leg),
            "walk_minutes": str(walk),
            "stand_minutes": str(stand),
            "global_change": str(change),
        }
        if timepoint.wound_questions:
            answers["wound_clean_dry"] = "yes"
        checkin.submit_checkin(timepoint, answers, now=answered, client=client)


def _seed_schedule(now: datetime, tz: ZoneInfo) -> int:
    """Locations, providers with weekday hours, the default types, a few booked visits."""

    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.intake.models import ConsultationRequest
    from clinic.models import StaffUser
    from clinic.scheduling import services as scheduling
    from clinic.scheduling.models import Location, Provider, ProviderHours

    locations = [Location(timezone=str(tz), **spec) for spec in LOCATIONS]
    db.session.add_all(locations)
    providers = []
    for email, blocks in PROVIDER_HOURS.items():
        user = db.session.scalars(select(StaffUser).where(StaffUser.email == email)).one()
        provider = Provider(
            name=user.full_name,
            title="MD",
            staff_user_id=user.id,
            feed_token=scheduling.new_feed_token(),
        )
        for location_index, weekdays, start, end in blocks:
            for weekday in weekdays:
                provider.hours.append(
                    ProviderHours(
                        location=locations[location_index],
                        weekday=weekday,
                        start_time=time.fromisoformat(start),
                        end_time=time.fromisoformat(end),
                    )
                )
        providers.append(provider)
    db.session.add_all(providers)
    types = {t.code: t for t in scheduling.install_default_types()}
    db.session.flush()
    # a handful of consultations for routine requests, leaving most slots free
    requests = db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.triage == "routine")
        .order_by(ConsultationRequest.id)
    ).all()
    booked = 0
    for index, req in enumerate(requests[:4]):
        slots = scheduling.search_slots(
            types["consultation"],
            now + timedelta(days=1 + index // 2),
            now + timedelta(days=2 + index // 2),
            now=now,
            provider=providers[index % len(providers)],
        )
        if slots:
            slot = slots[(index * 5) % len(slots)]
            scheduling.book_appointment(
                req.patient,
                types["consultation"],
                db.session.get(Provider, slot.provider_id),
                slot.start,
                now=now,
                actor=None,
                source="patient",
                consultation_request_id=req.id,
            )  # marks the request booked, with its reason
            booked += 1
    return booked


def _seed_waitlist(now: datetime) -> None:
    """A consultation its patient cancelled (a freed time), and two patients waiting: one for a
    consultation, who is offered it, and the follow-up patient for a phone check-in, which
    fits in it too."""
    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.intake.models import ConsultationRequest
    from clinic.models import StaffUser
    from clinic.scheduling import services as scheduling
    from clinic.scheduling import waitlist
    from clinic.scheduling.models import AppointmentType, Provider

    front_desk = db.session.scalars(select(StaffUser).where(StaffUser.role == "front_desk")).one()
    types = {t.code: t for t in db.session.scalars(select(AppointmentType))}
    provider = db.session.scalars(select(Provider).order_by(Provider.id)).first()
    waiting, followed_up = db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.triage == "routine")
        .order_by(ConsultationRequest.id.desc())
    ).all()[:2]
    cancelling = db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.status == "booked")
        .order_by(ConsultationRequest.id)
    ).first()
    slot = scheduling.search_slots(
        types["consultation"],
        now + timedelta(days=3),
        now + timedelta(days=10),
        now=now,
        provider=provider,
    )[0]
    appointment = scheduling.book_appointment(
        cancelling.patient,
        types["consultation"],
        provider,
        slot.start,
        now=now - timedelta(hours=3),
        actor=front_desk,
        source="staff",
    )
    scheduling.cancel(
        appointment, "Patient will call back", now=now - timedelta(hours=1), actor=front_desk
    )
    for request, code, days_ago, note in (
        (waiting, "consultation", 6, "Mornings are best"),
        (followed_up, "phone_check_in", 2, "Asked for a call about the wound"),
    ):
        waitlist.add_entry(
            request.patient_id,
            types[code].id,
            provider.id if code == "phone_check_in" else None,
            note,
            actor=front_desk,
            now=now - timedelta(days=days_ago),
        )
