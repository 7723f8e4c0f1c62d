"""Patient pages: pick a consultation time after the intake; manage it from the emailed link.

The links carry signed, purpose-bound tokens (no patient data); pages act only on POST.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField

from clinic import http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db, limiter
from clinic.models import Patient
from clinic.notifications.services import wants_acknowledgement
from clinic.scheduling import links, services
from clinic.scheduling.instructions import instructions_for
from clinic.scheduling.models import (
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)

bp = Blueprint("scheduling", __name__)
DAYS_SHOWN = 7
CANCEL_REASONS = [
    ("cannot_make_it", "I can't make it at that time"),
    ("feeling_better", "I'm feeling better"),
    ("another_clinic", "I'm being seen elsewhere"),
    ("other", "Another reason"),
]


class CancelForm(FlaskForm):
    reason = SelectField("Why are you cancelling?", choices=CANCEL_REASONS)


class PickForm(FlaskForm):
    """The chosen slot comes as "provider_id|ISO start"; checked against what is offered."""


def _consultation() -> AppointmentType:
    found = db.session.scalars(
        select(AppointmentType).where(
            AppointmentType.code == "consultation", AppointmentType.active.is_(True)
        )
    ).first()
    if found is None:
        abort(404)
    return found


def _days_from(raw: str | None) -> datetime:
    tz = http.clinic_tz()
    today = http.now().astimezone(tz).date()
    try:
        day = date.fromisoformat(raw) if raw else today
    except ValueError:
        day = today
    # never before today, never past the longest booking horizon a clinic may set
    day = min(max(day, today), today + timedelta(days=731))
    return datetime.combine(day, time(0), tzinfo=tz)


def _slot_days(appointment_type, start, *, rescheduling=None):
    """The free slots of the next week, grouped by clinic-local day, with provider names; when
    rescheduling, the appointment's own time counts as free to move within, but is not on offer
    (choosing it would move nothing)."""
    tz = http.clinic_tz()
    end = start + timedelta(days=DAYS_SHOWN)
    found = services.search_slots(
        appointment_type,
        start,
        end,
        now=http.now(),
        exclude_appointment_id=rescheduling.id if rescheduling is not None else None,
    )
    if rescheduling is not None:
        found = [
            s
            for s in found
            if (s.provider_id, s.start) != (rescheduling.provider_id, rescheduling.start_at)
        ]
    providers = {p.id: p for p in db.session.scalars(select(Provider))}
    locations = {loc.id: loc for loc in db.session.scalars(select(Location))}
    days: dict[date, list[dict]] = {}
    for slot in found:
        local = slot.start.astimezone(tz)
        days.setdefault(local.date(), []).append(
            {
                "value": f"{slot.provider_id}|{slot.start.isoformat()}",
                "time": local.strftime("%-I:%M %p"),
                "zone": local.strftime("%Z"),  # EST or EDT: a week may cross a clock change
                "provider": providers[slot.provider_id].name,
                "location": locations[slot.location_id].name,
            }
        )
    return days, end


def _pick_page(appointment_type, start, *, token, form, errors, rescheduling=None, code=200):
    """The week of free times from ``start``, with links to the weeks before and after.

    The form carries the shown week's first day, so a refused choice shows the same week again.
    """
    days, end = _slot_days(appointment_type, start, rescheduling=rescheduling)
    now = http.now().astimezone(http.clinic_tz())
    today = now.date()
    earlier = max(start.date() - timedelta(days=DAYS_SHOWN), today)
    # the last day the type can be booked: no later weeks to look at past it
    last_day = (now + timedelta(days=appointment_type.horizon_days)).date()
    page = render_template(
        "scheduling/book.html",
        zone_name=_zone_name(),
        minutes=appointment_type.duration_minutes,
        form=form,
        days=days,
        token=token,
        shown_from=start.date().isoformat(),
        earlier_from=earlier.isoformat() if start.date() > today else None,
        next_from=end.date().isoformat() if end.date() <= last_day else None,
        last_day=last_day if start.date() > last_day else None,
        errors=errors,
        rescheduling=rescheduling,
    )
    return page, code


def _zone_name() -> str:
    """The clinic's time zone in words a patient knows, e.g. "New York time"."""
    return http.clinic_tz().key.rsplit("/", 1)[-1].replace("_", " ") + " time"


def _chosen(raw: str | None) -> tuple[Provider, datetime]:
    provider_id, _, start = (raw or "").partition("|")
    try:
        ident = int(provider_id)
        provider = db.session.get(Provider, ident) if http.sane_id(ident) else None
        moment = datetime.fromisoformat(start)
    except ValueError:
        provider, moment = None, None
    if provider is None or moment is None or moment.tzinfo is None or not http.sane_moment(moment):
        raise ValidationFailed({"slot": ["Choose a time from the list."]})
    return provider, moment


def _booking(token: str):
    data = links.read_booking_token(token)
    patient = db.session.get(Patient, data["patient_id"]) if data else None
    if patient is None:
        return None, None
    return patient, data.get("request_id")


@bp.get("/book/<token>")
def book(token: str):
    patient, request_id = _booking(token)
    if patient is None:
        return render_template("scheduling/link_expired.html"), 404
    existing = services.live_appointment(request_id)
    if existing is not None:  # a booking link books once; the manage page moves it
        flash("You already have an appointment. You can change it here.", "info")
        return redirect(url_for(".manage", token=links.manage_token(existing)))
    start = _days_from(request.args.get("from"))
    return _pick_page(_consultation(), start, token=token, form=PickForm(), errors={})


@bp.post("/book/<token>")
@limiter.limit(http.public_post_limit)
def book_post(token: str):
    patient, request_id = _booking(token)
    if patient is None:
        return render_template("scheduling/link_expired.html"), 404
    form = PickForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        provider, start = _chosen(request.form.get("slot"))
        appointment = services.book_appointment(
            patient,
            _consultation(),
            provider,
            start,
            now=http.now(),
            actor=None,
            source="patient",
            consultation_request_id=request_id,
            client=http.client_meta(),
        )
    except services.AlreadyBooked:
        db.session.rollback()
        return redirect(url_for(".book", token=token))
    except (ValidationFailed, services.SlotUnavailable) as exc:
        db.session.rollback()
        message = (
            "That time was just taken. Please choose another."
            if isinstance(exc, services.SlotUnavailable)
            else "Choose a time from the list."
        )
        return _pick_page(
            _consultation(),
            _days_from(request.form.get("from")),
            token=token,
            form=form,
            errors={"slot": [message]},
            code=409 if isinstance(exc, services.SlotUnavailable) else 422,
        )
    db.session.commit()
    flash(_booked_message(patient), "success")
    return redirect(url_for(".manage", token=links.manage_token(appointment)))


def _booked_message(patient: Patient) -> str:
    """Where the patient finds this page's link again: the confirmation, or a bookmark."""
    if wants_acknowledgement(patient) and not patient.confidential_comms_request:
        return "You're booked. We're emailing you a confirmation with a link to this page."
    return "You're booked. Bookmark this page: its link lets you change or cancel your visit."


def _managed(token: str):
    appointment = links.appointment_for(token, http.now())
    if appointment is None:  # forged, or an old email's link: say so, and who to call
        page = render_template("scheduling/link_expired.html", about="appointment")
        abort(make_response(page, 404))
    return appointment


@bp.get("/appointments/manage/<token>")
def manage(token: str):
    appointment = _managed(token)
    tz = http.clinic_tz()
    return render_template(
        "scheduling/manage.html",
        appointment=appointment,
        token=token,
        start=appointment.start_at.astimezone(tz),
        zone_name=_zone_name(),
        form=CancelForm(),
        can_change=services.patient_may_change(appointment, http.now()),
        instructions=instructions_for(appointment.appointment_type.code),
    )


@bp.post("/appointments/manage/<token>/cancel")
@limiter.limit(http.public_post_limit)
def manage_cancel(token: str):
    appointment = _managed(token)
    form = CancelForm()
    if not form.validate_on_submit():
        abort(400)
    label = dict(CANCEL_REASONS)[form.reason.data]
    try:
        services.cancel(
            appointment, f"Patient: {label}", now=http.now(), actor=None, client=http.client_meta()
        )
    except (DomainError, ValidationFailed):
        db.session.rollback()
        # a second click, or staff were first: the page says it is cancelled, nothing to add
        if appointment.status != AppointmentStatus.CANCELLED:
            flash("This appointment can no longer be cancelled online. Please call us.", "error")
        return redirect(url_for(".manage", token=token))
    db.session.commit()
    flash("Your appointment is cancelled.", "success")
    return redirect(url_for(".manage", token=token))


@bp.route("/appointments/manage/<token>/reschedule", methods=["GET", "POST"])
@limiter.limit(http.public_post_limit, methods=["POST"])
def manage_reschedule(token: str):
    appointment = _managed(token)
    if not services.patient_may_change(appointment, http.now()):
        flash("This appointment can't be changed online. Please call us.", "error")
        return redirect(url_for(".manage", token=token))
    form = PickForm()
    errors: dict[str, list[str]] = {}
    code = 200
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        try:
            provider, start = _chosen(request.form.get("slot"))
            services.reschedule(
                appointment,
                start,
                now=http.now(),
                actor=None,
                provider=provider,
                client=http.client_meta(),
            )
        except services.SlotUnavailable:
            db.session.rollback()
            errors, code = {"slot": ["That time was just taken. Please choose another."]}, 409
        except ValidationFailed:
            db.session.rollback()
            errors, code = {"slot": ["Choose a time from the list."]}, 422
        except DomainError:  # it was cancelled or began while this page was open
            db.session.rollback()
            flash("This appointment can't be changed online. Please call us.", "error")
            return redirect(url_for(".manage", token=token))
        else:
            db.session.commit()
            flash("Your appointment has moved.", "success")
            return redirect(url_for(".manage", token=token))
    start = _days_from(request.form.get("from") or request.args.get("from"))
    return _pick_page(
        appointment.appointment_type,
        start,
        token=token,
        form=form,
        errors=errors,
        rescheduling=appointment,
        code=code,
    )
