"""The patient's follow-up check-in, opened from the emailed link.

The link's token names the timepoint only. The patient then types their date of birth; the
signed session cookie remembers that (and the id of the check-in row) for a while, never an
answer. Every change happens on a POST; each step redirects back to the one page.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict

from clinic import http
from clinic.errors import DomainError, ValidationFailed
from clinic.extensions import db, limiter
from clinic.followup import checkin, questions
from clinic.followup.models import CheckIn, Timepoint, TimepointStatus
from clinic.intake.rules import Triage
from clinic.notifications import links

logger = logging.getLogger(__name__)
bp = Blueprint("followup", __name__)

SESSION_KEY = "checkin"
VERIFIED_FOR = timedelta(hours=2)


class CheckInForm(FlaskForm):
    """Carries the CSRF token; the answers are checked by questions.validate."""


@bp.after_request
def no_store(response):
    if request.blueprint == bp.name:
        response.headers["Cache-Control"] = "no-store"
    return response


def _timepoint(token: str) -> Timepoint | None:
    timepoint_id = links.read_checkin(token)
    if timepoint_id is None or not http.sane_id(timepoint_id):
        return None
    return db.session.get(Timepoint, timepoint_id)


def _state(timepoint: Timepoint) -> dict:
    """This browser's progress through this check-in: ids, flags and a time, nothing else."""
    state = session.get(SESSION_KEY)
    if not isinstance(state, dict) or state.get("t") != timepoint.id:
        return {}
    return state


def _verified(state: dict) -> bool:
    at = state.get("at")
    now = http.now().timestamp()
    return isinstance(at, int | float) and 0 <= now - at < VERIFIED_FOR.total_seconds()


def _screen_row(timepoint: Timepoint, state: dict) -> CheckIn | None:
    row = db.session.get(CheckIn, state["c"]) if http.sane_id(state.get("c")) else None
    return row if row is not None and row.timepoint_id == timepoint.id else None


def _closed_page(timepoint: Timepoint | None):
    """The page for a link that can't be used now, or None if the check-in is open."""
    if timepoint is None:
        return render_template("followup/expired.html"), 404
    if timepoint.status == TimepointStatus.COMPLETED:
        if _state(timepoint).get("done"):
            return render_template("followup/done.html")
        return render_template("followup/answered.html")
    if not checkin.is_open(timepoint):
        return render_template("followup/expired.html"), 410
    if checkin.is_locked(timepoint):
        return render_template("followup/locked.html"), 403
    return None


@bp.get("/checkin/<token>")
def show(token: str):
    timepoint = _timepoint(token)
    closed = _closed_page(timepoint)
    if closed is not None:
        return closed
    state = _state(timepoint)
    if not _verified(state):
        return _identity_page(token, {})
    stopped = checkin.stopped_by(timepoint)
    if stopped is not None:
        # whichever browser answered: the red flag stands until staff acknowledge it
        if stopped.triage == Triage.EMERGENCY:
            return render_template("followup/emergency.html")
        return render_template("followup/urgent.html")
    row = _screen_row(timepoint, state)
    if row is not None and row.id == getattr(checkin.pending_screen(timepoint), "id", None):
        return _questions_page(token, timepoint, {}, {})
    return _screen_page(token, timepoint, {}, {})


@bp.get("/checkin/<token>/<any(identity, screen, answers):step>")
def step_address(token: str, step: str):
    """The address a form was sent to, opened again (a reload from the address bar, a link
    copied after an error page): back to the check-in, which shows where the patient is.
    Nothing changes on a GET."""
    return redirect(url_for(".show", token=token))


@bp.post("/checkin/<token>/identity")
@limiter.limit(http.public_post_limit)
def identity(token: str):
    timepoint = _timepoint(token)
    closed = _closed_page(timepoint)
    if closed is not None:
        return closed
    if not CheckInForm().validate_on_submit():
        abort(400)
    now = http.now()
    try:
        checkin.verify_identity(
            timepoint, request.form.get("date_of_birth"), now=now, client=http.client_meta()
        )
    except checkin.CheckInLocked:
        db.session.commit()  # the wrong tries are the lock: keep them
        return render_template("followup/locked.html"), 403
    except ValidationFailed as exc:
        db.session.commit()
        return _identity_page(token, exc.errors, carried=_carried(timepoint)), 422
    db.session.commit()
    # Checked again after the two hours ran out: this browser's screen still counts.
    state = {"c": None, **_state(timepoint), "t": timepoint.id, "at": int(now.timestamp())}
    session[SESSION_KEY] = state
    carried = _carried(timepoint)
    if carried is not None and _screen_row(timepoint, state) is not None:
        return _submit_answers(token, timepoint, state, carried)
    return redirect(url_for(".show", token=token))


def _carried(timepoint: Timepoint) -> MultiDict | None:
    """The answers sent after the identity check had run out, posted again with the date of
    birth (hidden fields of the identity page); None when the identity page carried none."""
    return _question_answers(timepoint) if request.form.get("carry") == "answers" else None


def _question_answers(timepoint: Timepoint) -> MultiDict:
    """What was posted for the check-in's questions, and nothing else of the form."""
    fields = questions.question_fields(
        timepoint.wound_questions, questions.odi_pack_for(timepoint), checkin.outcomes()
    )
    known = {f.id for f in fields}
    return MultiDict([(k, v) for k, v in request.form.items(multi=True) if k in known])


@bp.post("/checkin/<token>/screen")
@limiter.limit(http.public_post_limit)
def screen(token: str):
    timepoint = _timepoint(token)
    closed = _closed_page(timepoint)
    if closed is not None:
        return closed
    state = _state(timepoint)
    if not _verified(state):
        return redirect(url_for(".show", token=token))
    if not CheckInForm().validate_on_submit():
        abort(400)
    try:
        row = checkin.submit_red_flags(
            timepoint, request.form, now=http.now(), client=http.client_meta()
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return _screen_page(token, timepoint, request.form, exc.errors), 422
    except checkin.CheckInStopped:  # answered in another browser: show its message
        db.session.rollback()
        return redirect(url_for(".show", token=token))
    db.session.commit()
    session[SESSION_KEY] = {**state, "c": row.id}
    return redirect(url_for(".show", token=token))


@bp.post("/checkin/<token>/answers")
@limiter.limit(http.public_post_limit)
def answers(token: str):
    timepoint = _timepoint(token)
    closed = _closed_page(timepoint)
    if closed is not None:
        return closed
    state = _state(timepoint)
    if _screen_row(timepoint, state) is None:
        return redirect(url_for(".show", token=token))
    if not CheckInForm().validate_on_submit():
        abort(400)
    if not _verified(state):
        # The two hours ran out while the patient was answering: check who it is again, and
        # keep the answers in that page's form, so nothing typed is lost.
        return _identity_page(token, {}, carried=_question_answers(timepoint))
    return _submit_answers(token, timepoint, state, request.form)


def _submit_answers(token: str, timepoint: Timepoint, state: dict, form):
    """Store the answers of a verified browser whose screen row is this check-in's."""
    try:
        checkin.submit_checkin(timepoint, form, now=http.now(), client=http.client_meta())
    except ValidationFailed as exc:
        db.session.rollback()
        return _questions_page(token, timepoint, form, exc.errors), 422
    except DomainError:  # the screen was not clear, or is gone: start from the page again
        db.session.rollback()
        return redirect(url_for(".show", token=token))
    db.session.commit()
    session[SESSION_KEY] = {**state, "done": True}
    return redirect(url_for(".show", token=token))


def _identity_page(token: str, errors, carried=None):
    return render_template(
        "followup/identity.html",
        form=CheckInForm(),
        token=token,
        errors=errors,
        carried=list(carried.items(multi=True)) if carried is not None else None,
    )


def _screen_page(token: str, timepoint: Timepoint, values, errors):
    fields = questions.screen_fields(timepoint.wound_questions, checkin.outcomes())
    return _step_page("followup/screen.html", token, fields, values, errors)


def _questions_page(token: str, timepoint: Timepoint, values, errors):
    pack = questions.odi_pack_for(timepoint)
    fields = questions.question_fields(timepoint.wound_questions, pack, checkin.outcomes())
    return _step_page("followup/questions.html", token, fields, values, errors, pack=pack)


def _step_page(template: str, token: str, fields, values, errors, **extra):
    # re-shown answers are the strings just posted, so radios and boxes match their codes
    shown = {f.id: values.get(f.id) for f in fields if isinstance(values.get(f.id), str)}
    return render_template(
        template,
        form=CheckInForm(),
        token=token,
        fields=fields,
        answers=shown,
        errors=errors,
        **extra,
    )
