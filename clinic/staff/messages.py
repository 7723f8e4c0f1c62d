"""The message log: every notification row with its delivery state, overall and per patient,
a resend button, and the "dispatcher has stopped" banner on every back-office page.

Routes on the staff blueprint. The log shows kinds, template ids, due times, status, attempts
and the last error, never message content (domain spec 4.2: log template ids, not rendered
text). Flash messages carry no names.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload

from clinic import audit, http
from clinic.errors import DomainError
from clinic.extensions import db
from clinic.models import Patient
from clinic.notifications import dispatcher
from clinic.notifications import services as notifications
from clinic.notifications.models import Notification, Status
from clinic.staff.forms import ActionForm
from clinic.staff.roles import can, require
from clinic.staff.views import bp, safe_back

PAGE_SIZE = 50
RESENDABLE = {str(s) for s in notifications.RESENDABLE}


@bp.context_processor
def staff_context() -> dict:
    """Role checks for the nav, and whether the dispatcher has stopped (staff pages only)."""
    if not current_user.is_authenticated:
        return {}
    try:
        stale = dispatcher.is_stale(http.now())
        last = dispatcher.last_run() if stale else None
    except SQLAlchemyError:
        # Rendering the error page of a failed transaction: say nothing rather than fail again.
        db.session.rollback()
        stale, last = False, None
    return {
        "staff_can": lambda permission: can(current_user, permission),
        "dispatcher_stale": stale,
        "dispatcher_last_run": last,
    }


def resendable(row: Notification) -> bool:
    """Whether the resend button is offered (a staff task is not a message to resend)."""
    return row.channel == "email" and row.status in RESENDABLE


def _template_args() -> dict:
    return {
        "action_form": ActionForm(),
        "may_resend": can(current_user, "messages.resend"),
        "resendable": resendable,
        "statuses": [s.value for s in Status],
    }


@bp.get("/messages")
@login_required
@require("messages.view")
def messages():
    status = request.args.get("status", "")
    status = status if status in {s.value for s in Status} else ""
    page = min(max(1, request.args.get("page", 1, type=int)), 10_000)
    query = select(Notification).options(joinedload(Notification.patient))
    if status:
        query = query.where(Notification.status == status)
    query = query.order_by(Notification.updated_at.desc(), Notification.id.desc())
    rows = db.session.scalars(query.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    audit.record(
        "search",
        actor=current_user,
        resource_type="notification",
        reason=f"message log{f' ({status})' if status else ''}",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    return render_template(
        "staff/messages.html",
        rows=rows[:PAGE_SIZE],
        status=status,
        page=page,
        has_more=len(rows) > PAGE_SIZE,
        **_template_args(),
    )


@bp.get("/patients/<int:patient_id>/messages")
@login_required
@require("messages.view")
def patient_messages(patient_id: int):
    patient = db.session.get(Patient, patient_id) or abort(404)
    rows = notifications.for_patient(patient.id)
    audit.record(
        "view",
        actor=current_user,
        patient_id=patient.id,
        resource_type="notification",
        reason="patient message log",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    return render_template(
        "staff/patient_messages.html",
        patient=patient,
        rows=rows,
        may_see_outcomes=can(current_user, "followup.outcomes"),
        **_template_args(),
    )


@bp.post("/messages/<int:notification_id>/resend")
@login_required
@require("messages.resend")
def resend_message(notification_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    row = db.session.get(Notification, notification_id, with_for_update=True) or abort(404)
    back = safe_back(request.form.get("next"), url_for(".messages"))
    if row.channel != "email":
        abort(400)  # the page offers no button for staff tasks: this was tampered with
    try:
        notifications.resend(row, actor=current_user, now=http.now(), client=http.client_meta())
    except DomainError as exc:
        db.session.rollback()
        flash(f"Not resent: {exc}", "error")
        return redirect(back)
    db.session.commit()  # the send task is handed the id once this commits
    flash(f"Message #{notification_id} is being sent again.", "success")
    return redirect(back)
