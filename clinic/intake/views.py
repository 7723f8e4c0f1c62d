"""The public pages: home and the multi-step intake."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from clinic import http
from clinic.extensions import csrf, db, limiter
from clinic.intake import drafts, odi, schema, services
from clinic.intake.conditions import fields_named
from clinic.intake.fields import SECTIONS
from clinic.intake.forms import EmergencyChoiceForm, IntakeStepForm
from clinic.intake.models import ConsultationRequest
from clinic.intake.rules import Triage, TriageResult, current_rules, triage
from clinic.intake.submit import submit_from_draft
from clinic.notifications import services as notifications
from clinic.scheduling import links

logger = logging.getLogger(__name__)
bp = Blueprint("intake", __name__)

DRAFT_IDLE = timedelta(hours=24)
SESSION_KEY = "intake_draft"


@bp.get("/")
def home():
    return render_template("intake/home.html")


def _draft(*, for_update: bool = False):
    return drafts.find_draft(
        session.get(SESSION_KEY), http.now(), DRAFT_IDLE, for_update=for_update
    )


def _step_index(slug: str) -> int:
    for i, section in enumerate(SECTIONS):
        if section.slug == slug:
            return i
    abort(404)


@bp.get("/intake")
@bp.get("/intake/<slug>")
def step(slug: str = SECTIONS[0].slug):
    index = _step_index(slug)
    draft = _draft()
    if index > 0 and (draft is None or draft.step < index):
        return _not_yet(draft)
    answers = draft.answers if draft else {}
    return _render_step(odi.current_sections(), index, IntakeStepForm(), answers, {})


@bp.post("/intake")
@bp.post("/intake/<slug>")
@limiter.limit(http.public_post_limit, methods=["POST"])
@csrf.exempt  # checked by the form below, after the rate limit has counted the POST
def save(slug: str = SECTIONS[0].slug):
    index = _step_index(slug)
    form = IntakeStepForm()
    draft = _draft(for_update=True)  # a double-clicked "Send" waits, then finds no draft
    if index > 0 and (draft is None or draft.step < index):
        return _not_yet(draft)
    sections = odi.current_sections()
    section = sections[index]
    now = http.now()
    context = dict(draft.answers) if draft else {}
    values, errors = schema.from_form(section, request.form)
    if not form.validate_on_submit():
        # The page's token expired (left open for hours) or is missing: save nothing, but
        # show what was typed again with a fresh token, so the patient only sends it again.
        shown = {**context, **values, **_typed(section, errors)}
        again = _render_step(
            sections, index, IntakeStepForm(), context, {}, display=shown, expired=True
        )
        return again, 400
    clean, more = schema.validate(
        [section], values, context, now.astimezone(http.clinic_tz()).date()
    )
    errors = {**more, **errors}
    page = _page_due(
        draft, triage(drafts.with_step(context, index, clean, sections=sections), current_rules())
    )
    # spec 1.1.2: an emergency answer blocks at once, even with another question left blank
    if errors and page != Triage.EMERGENCY:
        shown = {**context, **values, **_typed(section, errors)}
        typed = {**context, **values}
        return _render_step(sections, index, form, typed, errors, display=shown), 422
    if draft is None:
        draft, key = drafts.start_draft(now)
        session[SESSION_KEY] = key
    drafts.save_step(draft, index, clean, now, complete=not errors, sections=sections)
    if page is not None:
        # saved and staff alerted now (once per request), even if the patient goes no further
        existing = (
            db.session.get(ConsultationRequest, draft.request_id) if draft.request_id else None
        )
        partial = services.save_partial(
            draft.answers,
            source="patient",
            rules=current_rules(),
            now=now,
            tz=http.clinic_tz(),
            client=http.client_meta(),
            existing=existing,
        )
        notifications.request_flagged(partial, now=now, new=existing is None)
        draft.request_id = partial.id
        draft.emergency_seen = draft.emergency_seen or page == Triage.EMERGENCY
        draft.urgent_seen = True
        db.session.commit()
        return redirect(url_for(".emergency" if page == Triage.EMERGENCY else ".urgent"))
    if index + 1 < len(sections):
        db.session.commit()
        return redirect(url_for(".step", slug=sections[index + 1].slug))
    return _finish(sections, draft, index, clean)


def _not_yet(draft):
    """Where a step the patient hasn't reached sends them: the step they are on, or, back
    after sending (the Back button, a second click), the thank-you page, not a blank form."""
    if draft is None and session.get("intake_done"):
        return redirect(url_for(".done"))
    return redirect(url_for(".step", slug=SECTIONS[draft.step if draft else 0].slug))


def _page_due(draft, result: TriageResult) -> Triage | None:
    """The emergency or urgent page these answers still call for (each shows once a draft)."""
    emergency_seen = draft is not None and draft.emergency_seen
    urgent_seen = draft is not None and draft.urgent_seen
    if result.level == Triage.EMERGENCY and not emergency_seen:
        return Triage.EMERGENCY
    if result.level == Triage.URGENT and not (urgent_seen or emergency_seen):
        return Triage.URGENT
    return None


def _finish(sections, draft, index, clean):
    result = submit_from_draft(draft, client=http.client_meta())
    if result.errors:
        # A rule on an earlier step no longer holds (for example an answer that depends on
        # another, or an ODI pack loaded since that step): send the patient back to the first
        # step with a problem.
        first = next(
            i for i, s in enumerate(sections) if any(f.id in result.errors for f in s.fields)
        )
        # keep this last step's answers: nothing already given is lost
        db.session.rollback()
        draft = _draft()
        drafts.save_step(draft, index, clean, http.now(), sections=sections)
        answers = dict(draft.answers)
        db.session.commit()
        return _render_step(sections, first, IntakeStepForm(), answers, result.errors), 422
    session.pop(SESSION_KEY, None)
    # the id only: the session cookie is signed, not encrypted, and triage says too much
    session["intake_done"] = result.request.id
    return redirect(url_for(".done"))


def _typed(section, errors) -> dict:
    """What was typed into the text boxes that could not be read, to show it back as typed."""
    return {
        f.id: request.form.get(f.id, "")
        for f in section.fields
        if f.id in errors and f.kind not in ("choice", "bool", "multi", "ack")
    }


def _render_step(sections, index, form, answers, errors, *, display=None, expired=False):
    section = sections[index]
    today = http.now().astimezone(http.clinic_tz()).date()
    shown = [
        f
        for f in section.fields
        if f.show_when is None
        or _depends_on_section(f, section)
        or schema.is_shown(f, answers, today)
    ]
    # Answers from other steps that this page's show/hide conditions read.
    own = {f.id for f in section.fields}
    context = {
        name: answers.get(name)
        for f in shown
        if f.show_when
        for name in fields_named(f.show_when)
        if name not in own
    }
    return render_template(
        "intake/step.html",
        form=form,
        section=section,
        fields=shown,
        index=index,
        sections=sections,
        # what the boxes show: the answers, or what was just typed where it could not be read
        answers=answers if display is None else display,
        errors=errors,
        expired=expired,
        context=context,
        is_required=lambda f: schema.is_required(f, answers, today),
    )


def _depends_on_section(field, section) -> bool:
    """Conditions on this same step are shown and hidden in the browser, checked on save."""
    ids = {f.id for f in section.fields}
    return any(name in ids for name in fields_named(field.show_when))


@bp.route("/intake/emergency", methods=["GET", "POST"])
@limiter.limit(http.public_post_limit, methods=["POST"])
@csrf.exempt  # checked by the form below, after the rate limit has counted the POST
def emergency():
    draft = _draft()
    form = EmergencyChoiceForm()
    if form.validate_on_submit():
        if form.continue_anyway.data and draft is not None:
            return redirect(url_for(".step", slug=SECTIONS[draft.step].slug))
        session.pop(SESSION_KEY, None)
        return render_template("intake/emergency_read.html")
    return render_template("intake/emergency.html", form=form, has_draft=draft is not None)


@bp.get("/intake/urgent")
def urgent():
    draft = _draft()
    next_slug = SECTIONS[draft.step].slug if draft and draft.step < len(SECTIONS) else None
    return render_template("intake/urgent.html", next_slug=next_slug)


@bp.get("/intake/done")
def done():
    req = db.session.get(ConsultationRequest, session.get("intake_done") or 0)
    if req is None:
        return redirect(url_for(".home"))
    booking_url = None
    if req.triage != "emergency" and req.patient_id:
        booking_url = url_for("scheduling.book", token=links.booking_token(req))
    return render_template("intake/done.html", triage=req.triage, booking_url=booking_url)
