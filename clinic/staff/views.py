"""The back office: login, the intake queue, request pages, users and the audit log."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import String, and_, cast, or_, select

from clinic import audit, http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import csrf, db, limiter
from clinic.intake import services as intake_services
from clinic.intake.models import ConsultationRequest, RequestStatus
from clinic.intake.rules import Triage, current_rules
from clinic.models import AuditEvent, StaffSession, StaffUser
from clinic.staff import presenters, services
from clinic.staff.forms import ActionForm, EditUserForm, LoginForm, NewUserForm, StatusForm
from clinic.staff.roles import ROLE_LABELS, can, require

bp = Blueprint("staff", __name__, url_prefix="/staff")


def safe_back(target: str | None, default: str) -> str:
    """A back-office path of this site to go back to, else ``default`` (no open redirect)."""
    if (
        target
        and target.startswith("/staff/")
        and not target.startswith("//")
        and "\\" not in target
        and len(target) <= 500
    ):
        return target
    return default


PAGE_SIZE = 50
AUDIT_PAGE = 500  # events per page of the audit log


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(http.public_post_limit, methods=["POST"])
@csrf.exempt  # checked by LoginForm, after the rate limit has counted the POST
def login():
    if current_user.is_authenticated:
        return redirect(url_for(".queue" if can(current_user, "queue.view") else ".home"))
    form = LoginForm()
    if form.validate_on_submit():
        now = http.now()
        user = services.authenticate(
            form.email.data, form.password.data, now=now, client=http.client_meta()
        )
        if user is None:
            db.session.commit()  # keep the failed-login audit event
            form.password.errors.append("That email and password don't match an active account.")
            return render_template("staff/login.html", form=form), 401
        session = services.start_session(user, now)
        db.session.commit()
        user.session_id = session.id
        login_user(user)
        # back where the login interrupted (the form posts to its own URL, ?next= kept)
        return redirect(safe_back(request.args.get("next"), url_for(".home")))
    if form.is_submitted() and form.csrf_token.errors:
        # a page left open for hours, or restored after the browser dropped its cookie
        form.password.errors.append("This page had expired. Please enter your password again.")
        return render_template("staff/login.html", form=form), 400
    return render_template("staff/login.html", form=form)


@bp.post("/logout")
@csrf.exempt  # a forged logout only logs someone out; an expired page's logout must still work
@login_required
def logout():
    """End the server-side session whatever the CSRF token: a refused logout would leave the
    session running behind a login page that sends the user straight back in."""
    _end_current_session("logout")
    return redirect(url_for(".login"))


def _end_current_session(reason: str) -> None:
    session = db.session.get(StaffSession, current_user.session_id)
    if session is not None:
        services.end_session(session, reason, http.now(), client=http.client_meta())
        db.session.commit()
    logout_user()


@bp.get("/")
@login_required
def home():
    if can(current_user, "queue.view"):
        return redirect(url_for(".queue"))
    if can(current_user, "users.manage"):
        return redirect(url_for(".users"))
    abort(403)


@bp.get("/session-check")
@login_required
def session_check():
    """Where an idle page's automatic reload lands; it never counts as activity (auth.py).

    Reached only while the session is live, that is, when this browser was used in another
    tab: the page says so and checks again when the 15 minutes since that use run out.
    """
    back = safe_back(request.args.get("next"), url_for(".home"))
    idle = current_app.config["STAFF_IDLE_MINUTES"] * 60
    used_ago = (http.now() - g.staff_last_seen_at).total_seconds()
    wait = int(max(idle - used_ago, 0)) + 5
    return render_template("staff/session_check.html", back=back, wait=wait)


@bp.get("/requests")
@login_required
@require("queue.view")
def queue():
    filters = {k: request.args.get(k, "") for k in ("triage", "status", "flag", "callback")}
    query = select(ConsultationRequest)
    if filters["triage"] in {t.value for t in Triage}:
        query = query.where(ConsultationRequest.triage == filters["triage"])
    if filters["status"] in {s.value for s in RequestStatus}:
        query = query.where(ConsultationRequest.status == filters["status"])
    elif filters["status"] != "all":
        query = query.where(ConsultationRequest.status.not_in(["declined", "booked"]))
    if filters["flag"] == "unacknowledged":
        query = query.where(
            ConsultationRequest.triage != "routine", ConsultationRequest.red_flag_ack_at.is_(None)
        )
    if filters["callback"] == "pending":
        query = query.where(
            ConsultationRequest.callback_due_at.is_not(None),
            ConsultationRequest.callback_done_at.is_(None),
        )
    page = min(max(1, request.args.get("page", 1, type=int)), 10_000)
    query = query.order_by(
        ConsultationRequest.triage_rank,
        ConsultationRequest.callback_done_at.is_not(None),
        ConsultationRequest.submitted_at,
        ConsultationRequest.id,
    )
    rows = db.session.scalars(query.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    audit.record(
        "search",
        actor=current_user,
        resource_type="consultation_request",
        reason="intake queue",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    return render_template(
        "staff/queue.html",
        rows=rows[:PAGE_SIZE],
        filters=filters,
        page=page,
        has_more=len(rows) > PAGE_SIZE,
        statuses=RequestStatus,
        now=http.now(),
        tz=http.clinic_tz(),
    )


def _load_request(request_id: int) -> ConsultationRequest:
    req = db.session.get(ConsultationRequest, request_id)
    if req is None:
        abort(404)
    return req


@bp.get("/requests/<int:request_id>")
@login_required
@require("queue.view")
def request_detail(request_id: int):
    req = _load_request(request_id)
    return _render_request(req, StatusForm(status=req.status))


def _render_request(req, status_form, clinical_errors=None, code=200):
    """The request page. Every showing of it is a view in the audit log, also a form sent
    back with its errors (after the failed change was rolled back, so the view stays)."""
    audit.record_about("view", req, actor=current_user, client=http.client_meta(), now=http.now())
    db.session.commit()
    clinical, coverage = presenters.signals_for(current_user, req)
    return render_template(
        "staff/request.html",
        req=req,
        status_form=status_form,
        action_form=ActionForm(),
        sections=presenters.visible_sections(current_user, req),
        red_flags=presenters.red_flag_rows(req) if can(current_user, "request.clinical") else [],
        notes=req.red_flag_notes if can(current_user, "request.clinical") else [],
        signals=clinical,
        coverage=coverage,
        can=lambda p: can(current_user, p),
        clinician_fields=intake_services.CLINICIAN_FIELDS,
        levels=intake_services.LEVEL_CODES,
        spondy=intake_services.SPONDY_CHOICES,
        graded=[
            (field_id, presenters.CLINICIAN_LABELS[field_id])
            for field_id, choices in intake_services.CLINICIAN_CHOICES.items()
            if choices == intake_services.GRADE_CHOICES
        ],
        grades=intake_services.GRADE_CHOICES,
        findings=presenters.clinician_rows(current_user, req),
        clinical_errors=clinical_errors or {},
        tz=http.clinic_tz(),
    ), code


@bp.post("/requests/<int:request_id>/status")
@login_required
@require("request.status")
def change_status(request_id: int):
    req = _load_request(request_id)
    form = StatusForm()
    if not form.validate_on_submit():
        return _render_request(req, form, code=422)
    try:
        intake_services.change_status(
            req,
            form.status.data,
            form.reason.data,
            actor=current_user,
            now=http.now(),
            client=http.client_meta(),
        )
    except ValidationFailed as exc:
        db.session.rollback()
        for name, messages in exc.errors.items():
            getattr(form, name).errors = list(messages)
        return _render_request(req, form, code=422)
    db.session.commit()
    flash("Status changed.", "success")
    return redirect(url_for(".request_detail", request_id=req.id))


@bp.post("/requests/<int:request_id>/acknowledge")
@login_required
@require("request.ack_red_flag")
def acknowledge(request_id: int):
    return _simple_action(
        request_id, intake_services.acknowledge_red_flag, "Red flags acknowledged."
    )


@bp.post("/requests/<int:request_id>/callback-done")
@login_required
@require("request.callback")
def callback_done(request_id: int):
    return _simple_action(request_id, intake_services.complete_callback, "Callback recorded.")


def _simple_action(request_id, service, message):
    req = _load_request(request_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service(req, actor=current_user, now=http.now(), client=http.client_meta())
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".request_detail", request_id=req.id))
    db.session.commit()
    flash(message, "success")
    return redirect(url_for(".request_detail", request_id=req.id))


@bp.post("/requests/<int:request_id>/clinical")
@login_required
@require("request.clinician_entries")
def clinician_entries(request_id: int):
    req = _load_request(request_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    raw = {
        k: (request.form.getlist(k) if k == "clin_target_levels" else request.form.get(k, ""))
        for k in intake_services.CLINICIAN_FIELDS
        if k in request.form or k == "clin_target_levels"
    }
    try:
        intake_services.update_clinician_entries(
            req,
            raw,
            actor=current_user,
            rules=current_rules(),
            now=http.now(),
            tz=http.clinic_tz(),
            client=http.client_meta(),
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return _render_request(req, StatusForm(status=req.status), exc.errors, code=422)
    db.session.commit()
    flash("Clinical findings saved; signals updated.", "success")
    return redirect(url_for(".request_detail", request_id=req.id))


@bp.route("/users", methods=["GET", "POST"])
@login_required
@require("users.manage")
def users():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            services.create_staff(
                form.email.data,
                form.role.data,
                form.password.data,
                full_name=form.full_name.data or "",
                actor=current_user,
                now=http.now(),
            )
        except ValidationFailed as exc:
            db.session.rollback()
            for name, messages in exc.errors.items():
                getattr(form, name).errors = list(messages)
        else:
            db.session.commit()
            flash("Staff user created.", "success")
            return redirect(url_for(".users"))
    rows = db.session.scalars(select(StaffUser).order_by(StaffUser.email)).all()
    return render_template(
        "staff/users.html",
        rows=rows,
        tokens=services.live_token_counts(),
        form=form,
        roles=ROLE_LABELS,
        edit_form=EditUserForm(),
    ), 422 if form.errors else 200


@bp.post("/users/<int:user_id>")
@login_required
@require("users.manage")
def edit_user(user_id: int):
    user = db.session.get(StaffUser, user_id) or abort(404)
    form = EditUserForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.update_staff(
            user, role=form.role.data, active=form.active.data, actor=current_user, now=http.now()
        )
    except ValidationFailed as exc:
        db.session.rollback()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "error")
        return redirect(url_for(".users"))
    db.session.commit()
    flash("Saved.", "success")
    return redirect(url_for(".users"))


@bp.post("/users/<int:user_id>/revoke-tokens")
@login_required
@require("users.manage")
def revoke_user_tokens(user_id: int):
    user = db.session.get(StaffUser, user_id) or abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    count = services.revoke_api_tokens(user, actor=current_user, now=http.now())
    db.session.commit()
    flash(f"Revoked {count} API token{'' if count == 1 else 's'} of {user.email}.", "success")
    return redirect(url_for(".users"))


@bp.get("/audit")
@login_required
@require("audit.view")
def audit_log():
    patient_id = request.args.get("patient_id", type=int)
    patient_id = patient_id if http.sane_id(patient_id) else None
    query = select(AuditEvent).order_by(AuditEvent.ts.desc(), AuditEvent.id.desc())
    if patient_id:
        # with the views of the patient's requests from before they had a patient record
        requests = select(cast(ConsultationRequest.id, String)).where(
            ConsultationRequest.patient_id == patient_id
        )
        query = query.where(
            or_(
                AuditEvent.patient_id == patient_id,
                and_(
                    AuditEvent.patient_id.is_(None),
                    AuditEvent.resource_type == ConsultationRequest.__tablename__,
                    AuditEvent.resource_id.in_(requests),
                ),
            )
        )
    before_id = request.args.get("before", type=int)
    before = db.session.get(AuditEvent, before_id) if http.sane_id(before_id) else None
    if before is not None:  # the next page: events older than the last one shown
        query = query.where(
            or_(
                AuditEvent.ts < before.ts,
                and_(AuditEvent.ts == before.ts, AuditEvent.id < before.id),
            )
        )
    rows = db.session.scalars(query.limit(AUDIT_PAGE + 1)).all()
    older = rows[AUDIT_PAGE - 1].id if len(rows) > AUDIT_PAGE else None
    return render_template(
        "staff/audit.html",
        rows=rows[:AUDIT_PAGE],
        fields=presenters.audit_fields,
        patient_id=patient_id,
        paged=before is not None,
        older=older,
        tz=http.clinic_tz(),
    )


# Feature modules whose routes hang on this blueprint.
from clinic.staff import (  # noqa: E402, F401
    calendar,
    followup,
    messages,
    providers,
    schedule_settings,
    tasks,
    waitlist,
)
