"""Staff tasks (calls to make, non-responders, missed visits) and red-flag pauses."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from clinic import audit, http
from clinic.extensions import db
from clinic.followup import services
from clinic.followup.models import AutomationPause, StaffTask
from clinic.staff.forms import NoteForm
from clinic.staff.roles import require
from clinic.staff.views import bp, safe_back


def _render_tasks(failed: NoteForm | None = None, failed_key: tuple | None = None, code=200):
    tasks = db.session.scalars(
        select(StaffTask)
        .options(joinedload(StaffTask.patient))
        .where(StaffTask.done_at.is_(None))
        .order_by(StaffTask.due_at, StaffTask.id)
        .limit(300)
    ).all()
    pauses = db.session.scalars(
        select(AutomationPause)
        .options(joinedload(AutomationPause.patient))
        .where(AutomationPause.acknowledged_at.is_(None))
        .order_by(AutomationPause.created_at, AutomationPause.id)
    ).all()
    audit.record(
        "search",
        actor=current_user,
        resource_type="staff_task",
        reason="task list",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    return render_template(
        "staff/tasks.html",
        tasks=tasks,
        pauses=pauses,
        blank=NoteForm(formdata=None),
        failed=failed,
        failed_key=failed_key,
        held=services.red_flags_held,
        now=http.now(),
    ), code


@bp.get("/tasks")
@login_required
@require("tasks.view")
def tasks():
    return _render_tasks()


@bp.post("/tasks/<int:task_id>/done")
@login_required
@require("tasks.view")
def task_done(task_id: int):
    task = db.session.get(StaffTask, task_id, with_for_update=True) or abort(404)
    form = NoteForm()
    if not form.validate_on_submit():
        db.session.rollback()
        return _render_tasks(form, ("task", task_id), 422)
    if task.done_at is not None:
        db.session.rollback()
        flash("That task was already done.", "error")
        return redirect(url_for(".tasks"))
    now = http.now()
    services.complete_task(
        task, actor=current_user, now=now, note=form.note.data or "", client=http.client_meta()
    )
    db.session.commit()
    flash("Task done.", "success")
    return redirect(url_for(".tasks"))


@bp.post("/pauses/<int:pause_id>/acknowledge")
@login_required
@require("followup.ack_pause")
def acknowledge_pause(pause_id: int):
    pause = db.session.get(AutomationPause, pause_id, with_for_update=True) or abort(404)
    back = safe_back(request.form.get("next"), url_for(".tasks"))
    form = NoteForm()
    if not form.validate_on_submit():
        db.session.rollback()
        return _render_tasks(form, ("pause", pause_id), 422)
    if pause.acknowledged_at is not None:
        db.session.rollback()
        flash("That red flag was already acknowledged; messages had resumed.", "error")
        return redirect(back)
    if request.form.get("seen") != str(services.red_flags_held(pause)):
        db.session.rollback()
        flash(
            "Another red flag came in since that page was opened. Look at it first; "
            "messages stay paused.",
            "error",
        )
        return redirect(back)
    services.acknowledge_pause(
        pause,
        actor=current_user,
        now=http.now(),
        note=form.note.data or "",
        client=http.client_meta(),
    )
    db.session.commit()
    flash("Red flag acknowledged: routine messages to this patient resume.", "success")
    return redirect(back)
