"""Scheduling API: types, providers, slots, appointments (patients with a token, staff)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import abort, jsonify, request
from sqlalchemy import select

from clinic import audit, http
from clinic.api import bp
from clinic.api.auth import staff_or_abort
from clinic.api.idempotency import by_bearer_or_body, idempotent
from clinic.api.inputs import json_body, optional_text
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import csrf, db, limiter
from clinic.limits import storable
from clinic.models import Patient
from clinic.scheduling import links, services
from clinic.scheduling.models import Appointment, AppointmentStatus, AppointmentType, Provider
from clinic.staff.auth import bearer_user
from clinic.staff.roles import can

MAX_SEARCH_DAYS = 62


def parse_moment(
    raw: str | None, name: str, *, end_of_day: bool = False, day_ok: bool = True
) -> datetime:
    """YYYY-MM-DD (a clinic-local day) or an ISO 8601 datetime with its offset.

    A booking's start is a moment (day_ok=False): a bare day is a field error, not midnight.
    """
    if not raw:
        raise ValidationFailed({name: ["Required: YYYY-MM-DD or an ISO 8601 datetime."]})
    if len(raw) > 16 and raw[-6] == " " and raw[-3] == ":":
        # "...T09:00:00+00:00" put in a URL unencoded: its "+" arrives as a space
        raw = f"{raw[:-6]}+{raw[-5:]}"
    if not day_ok and len(raw) == 10:
        raise ValidationFailed(
            {name: ["Give the time too, with its offset, e.g. 2026-12-02T09:00:00-05:00."]}
        )
    try:
        if len(raw) == 10:
            day = datetime.fromisoformat(raw).date()
            if not http.sane_moment(day):
                raise ValueError
            moment = datetime.combine(day, time(0), tzinfo=http.clinic_tz())
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed({name: ["Use YYYY-MM-DD or an ISO 8601 datetime."]}) from None
    if moment.tzinfo is None:
        raise ValidationFailed({name: ["Give the datetime with its offset, e.g. -05:00."]})
    if not http.sane_moment(moment):
        raise ValidationFailed({name: ["Give a date between the years 1900 and 2999."]})
    return moment


def _type_by_code(code, field="appointment_type") -> AppointmentType:
    found = (
        db.session.scalars(
            select(AppointmentType).where(
                AppointmentType.code == code, AppointmentType.active.is_(True)
            )
        ).first()
        if isinstance(code, str) and storable(code)
        else None
    )
    if found is None:
        raise ValidationFailed({field: ["Unknown appointment type code."]})
    return found


def _provider(provider_id, field="provider_id") -> Provider:
    if provider_id is None:
        raise ValidationFailed({field: ["Required: a provider id."]})
    if not isinstance(provider_id, int) or isinstance(provider_id, bool):
        raise ValidationFailed({field: ["Must be a provider id (a whole number, not quoted)."]})
    provider = services.get_provider(provider_id) if http.sane_id(provider_id) else None
    if provider is None or not provider.active:
        raise ValidationFailed({field: ["Unknown provider."]})
    return provider


def _provider_id_arg() -> int | None:
    """?provider_id= as an id (None when absent); 422 for anything else."""
    raw = request.args.get("provider_id")
    provider_id = http.parse_id(raw)
    if raw is not None and provider_id is None:
        raise ValidationFailed({"provider_id": ["Must be a provider id."]})
    return provider_id


def _collect(errors: dict[str, list[str]], read):
    """read()'s value, or None with its field errors added to errors (to report them all)."""
    try:
        return read()
    except ValidationFailed as exc:
        errors.update(exc.errors)
        return None


def _body_start(body: dict) -> datetime:
    raw = body.get("start")
    if raw is not None and not isinstance(raw, str):
        raise ValidationFailed({"start": ["Must be a string: an ISO 8601 datetime with offset."]})
    start = parse_moment(raw, "start", day_ok=False)
    if start.second or start.microsecond:  # a start at 13:00:07 would block the 13:15 slot
        raise ValidationFailed({"start": ["Give the time to the minute (no seconds)."]})
    return start


def _booking_token_data(token) -> dict | None:
    """The booking token's data; None for anything that is not a valid token (a 422)."""
    if not isinstance(token, str) or not storable(token):
        return None
    return links.read_booking_token(token)


def _conflict(exc: services.SlotUnavailable):
    """A 409 for a time that can't be had; a reached per-day cap says so (the detail names
    the type, the provider and the cap, never the patient)."""
    db.session.rollback()
    if isinstance(exc, services.DailyCapReached):
        body = {"error": "slot_unavailable", "code": "daily_cap_reached", "detail": str(exc)}
        return jsonify(body), 409
    return jsonify({"error": "slot_unavailable"}), 409


def appointment_json(appointment: Appointment, *, with_manage_url: bool = False) -> dict:
    """An appointment as JSON; the patient's manage link (a capability) only in the answer to
    the booking, not in later reads."""
    tz = http.clinic_tz()
    return {
        "id": appointment.id,
        "status": appointment.status,
        "appointment_type": appointment.appointment_type.code,
        "start": appointment.start_at.astimezone(tz).isoformat(),
        "end": appointment.end_at.astimezone(tz).isoformat(),
        "provider_id": appointment.provider_id,
        "location_id": appointment.location_id,
        "patient_id": appointment.patient_id,
    } | ({"manage_url": links.manage_url(appointment)} if with_manage_url else {})


@bp.get("/appointment-types")
@limiter.limit(http.public_post_limit)
def appointment_types():
    rows = db.session.scalars(
        select(AppointmentType).where(AppointmentType.active.is_(True)).order_by(AppointmentType.id)
    )
    return jsonify(
        [
            {
                "code": t.code,
                "name": t.name,
                "duration_minutes": t.duration_minutes,
                "buffer_before_minutes": t.buffer_before_minutes,
                "buffer_after_minutes": t.buffer_after_minutes,
                "patient_bookable": t.patient_bookable,
            }
            for t in rows
        ]
    )


@bp.get("/providers")
@limiter.limit(http.public_post_limit)
def providers():
    rows = db.session.scalars(
        select(Provider).where(Provider.active.is_(True)).order_by(Provider.id)
    )
    return jsonify([{"id": p.id, "name": p.name, "title": p.title} for p in rows])


@bp.get("/slots")
@limiter.limit(http.public_post_limit)
def slots():
    args = request.args
    appointment_type = _type_by_code(args.get("appointment_type"))
    start = parse_moment(args.get("start"), "start")
    end = parse_moment(args.get("end"), "end", end_of_day=True)
    errors = {}
    if end <= start:
        errors["end"] = ["end must be after start."]
    elif end - start > timedelta(days=MAX_SEARCH_DAYS):
        errors["end"] = [f"Search at most {MAX_SEARCH_DAYS} days at a time."]
    provider = None
    try:
        provider_id = _provider_id_arg()
        provider = _provider(provider_id) if provider_id is not None else None
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    found = services.search_slots(appointment_type, start, end, now=http.now(), provider=provider)
    tz = http.clinic_tz()
    return jsonify(
        [
            {
                "provider_id": s.provider_id,
                "location_id": s.location_id,
                "start": s.start.astimezone(tz).isoformat(),
                "end": s.end.astimezone(tz).isoformat(),
            }
            for s in found
        ]
    )


@bp.post("/appointments")
@csrf.exempt
@limiter.limit(http.public_post_limit)
@idempotent(caller=by_bearer_or_body("booking_token"))
def create_appointment():
    body = json_body()
    staff = bearer_user() if request.headers.get("Authorization") else None
    if request.headers.get("Authorization") and staff is None:
        return jsonify({"error": "unauthorized"}), 401, {"WWW-Authenticate": "Bearer"}
    errors: dict[str, list[str]] = {}
    request_id = None
    if staff is not None:
        if not can(staff, "appointments.manage"):
            return jsonify({"error": "forbidden"}), 403
        patient = (
            db.session.get(Patient, body.get("patient_id"))
            if http.sane_id(body.get("patient_id"))
            else None
        )
        if patient is None:
            errors["patient_id"] = ["Unknown patient."]
    else:
        data = _booking_token_data(body.get("booking_token"))
        patient = db.session.get(Patient, data["patient_id"]) if data else None
        if patient is None:
            errors["booking_token"] = ["This booking link is not valid or has expired."]
        request_id = data["request_id"] if data else None
    # every field's error at once, not the first one's
    appointment_type = _collect(errors, lambda: _type_by_code(body.get("appointment_type")))
    provider = _collect(errors, lambda: _provider(body.get("provider_id")))
    start = _collect(errors, lambda: _body_start(body))
    if errors:
        raise ValidationFailed(errors)
    try:
        appointment = services.book_appointment(
            patient,
            appointment_type,
            provider,
            start,
            now=http.now(),
            actor=staff,
            source="api" if staff else "patient",
            consultation_request_id=request_id,
            client=http.client_meta(),
        )
    except services.SlotUnavailable as exc:
        return _conflict(exc)
    except services.AlreadyBooked:
        db.session.rollback()
        detail = (
            "This consultation request already has an appointment; "
            "change it from its manage link or call the clinic."
        )
        return jsonify({"error": "already_booked", "detail": detail}), 409
    db.session.commit()
    # PRODUCT.md's 201 shape, for a staff booking too: front desk gives the patient their link
    return jsonify(appointment_json(appointment, with_manage_url=True)), 201


@bp.get("/appointments")
def list_appointments():
    user = staff_or_abort("appointments.view")
    errors: dict[str, list[str]] = {}
    start = _collect(errors, lambda: parse_moment(request.args.get("start"), "start"))
    end = _collect(errors, lambda: parse_moment(request.args.get("end"), "end", end_of_day=True))
    provider_id = _collect(errors, _provider_id_arg)
    if start is not None and end is not None and end <= start:
        errors["end"] = ["end must be after start."]
    status = request.args.get("status") or None
    if status is not None and status not in set(AppointmentStatus):
        errors["status"] = ["Unknown status; use one of: " + ", ".join(AppointmentStatus) + "."]
    if errors:
        raise ValidationFailed(errors)
    rows = services.appointments_between(start, end, provider_id=provider_id, status=status)
    audit.record(
        "search",
        actor=user,
        resource_type="appointment",
        reason="api list",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    return jsonify([appointment_json(a) for a in rows])


def _appointment(appointment_id: int) -> Appointment:
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        abort(404)
    return appointment


def _act(appointment_id: int, action):
    user = staff_or_abort("appointments.manage")
    appointment = _appointment(appointment_id)
    body = json_body()
    try:
        action(appointment, body, user)
    except services.SlotUnavailable as exc:
        return _conflict(exc)
    except ValidationFailed:
        db.session.rollback()
        raise
    except DomainError as exc:
        db.session.rollback()
        return jsonify({"error": "not_allowed", "detail": str(exc)}), 409
    db.session.commit()
    return jsonify(appointment_json(appointment))


@bp.post("/appointments/<int:appointment_id>/cancel")
@csrf.exempt
@idempotent
def cancel_appointment(appointment_id: int):
    return _act(
        appointment_id,
        lambda a, body, user: services.cancel(
            a,
            optional_text(body, "reason"),
            now=http.now(),
            actor=user,
            client=http.client_meta(),
        ),
    )


@bp.post("/appointments/<int:appointment_id>/reschedule")
@csrf.exempt
@idempotent
def reschedule_appointment(appointment_id: int):
    def move(appointment, body, user):
        start = _body_start(body)
        provider = _provider(body["provider_id"]) if "provider_id" in body else None
        services.reschedule(
            appointment,
            start,
            now=http.now(),
            actor=user,
            provider=provider,
            client=http.client_meta(),
        )

    return _act(appointment_id, move)


@bp.post("/appointments/<int:appointment_id>/status")
@csrf.exempt
@idempotent
def appointment_status(appointment_id: int):
    return _act(
        appointment_id,
        lambda a, body, user: services.change_status(
            a,
            body.get("status") if isinstance(body.get("status"), str) else "",
            now=http.now(),
            actor=user,
            reason=optional_text(body, "reason"),
            client=http.client_meta(),
        ),
    )
