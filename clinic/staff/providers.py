"""Providers in the back office: their calendar feed URLs, and rotating a leaked one."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from clinic import audit, http
from clinic.extensions import db
from clinic.scheduling import services
from clinic.scheduling.feeds import feed_url
from clinic.scheduling.models import Provider
from clinic.staff.forms import ActionForm
from clinic.staff.roles import can, require
from clinic.staff.views import bp


@bp.get("/providers")
@login_required
@require("schedule.edit")
def providers():
    """The feed URLs, to those who hand them out; the admin gets the rotate buttons only, as a
    URL reads patients' initials and appointment times (no PHI for the admin, spec 4.4)."""
    rows = db.session.scalars(
        select(Provider).order_by(Provider.active.desc(), Provider.name)
    ).all()
    show_urls = can(current_user, "schedule.feeds")
    if show_urls:
        # The feed URLs are credentials: who looked at them is worth knowing.
        audit.record(
            "view",
            actor=current_user,
            resource_type="provider",
            reason="calendar feed URLs",
            client=http.client_meta(),
            now=http.now(),
        )
        db.session.commit()
    return render_template(
        "staff/providers.html",
        rows=[(p, feed_url(p) if show_urls else None) for p in rows],
    )


@bp.post("/providers/<int:provider_id>/feed-token")
@login_required
@require("schedule.edit")
def rotate_feed_token(provider_id: int):
    provider = db.session.get(Provider, provider_id) or abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    provider.feed_token = services.new_feed_token()
    audit.record(
        "update",
        actor=current_user,
        resource_type="provider",
        resource_id=provider.id,
        changed_fields=["feed_token"],
        reason="calendar feed URL rotated",
        client=http.client_meta(),
        now=http.now(),
    )
    db.session.commit()
    # The new URL is on the page, not in the (cookie-borne) flash message.
    flash(
        f"New calendar feed URL for {provider.name}: the old one no longer works. "
        "Subscribe again with the new one.",
        "success",
    )
    return redirect(url_for(".providers"))
