"""Flask-Login wired to server-side sessions, and bearer tokens for the staff API."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, g, jsonify, request, session
from flask_login import current_user
from sqlalchemy.orm import Session

from clinic import http
from clinic.extensions import db, login_manager
from clinic.models import StaffSession, StaffUser
from clinic.staff import services


def init_auth(app: Flask) -> None:
    login_manager.init_app(app)

    @app.before_request
    def load_staff_first():
        # load_user works in a connection of its own. On SQLite every transaction takes the
        # write lock at BEGIN, so that connection must begin before the request's session
        # does: a page that read the database first and showed the staff user later (a
        # patient's link opened in a logged-in browser) waited on its own request's lock.
        # App-level hooks run before the blueprints' and the views; no earlier hook reads the
        # database. Browsers without a staff login cost nothing here.
        if "_user_id" in session:
            current_user._get_current_object()

    login_manager.login_view = "staff.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(session_id: str):
        idle = timedelta(minutes=current_app.config["STAFF_IDLE_MINUTES"])
        # Its own short transaction: refreshing last_seen_at must not commit the request's work.
        with Session(db.engine) as dbs, dbs.begin():
            session = services.active_session(
                session_id,
                now=http.now(),
                idle=idle,
                dbs=dbs,
                touch=request.endpoint != "staff.session_check",
            )
            user_id = session.user_id if session else None
            g.staff_last_seen_at = session.last_seen_at if session else None
            if session is None:
                ended = dbs.get(StaffSession, session_id)
                g.staff_session_ended = (ended.end_reason if ended else None) or "gone"
        if user_id is None:
            return None
        user = db.session.get(StaffUser, user_id)
        user.session_id = session_id
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import flash, redirect, url_for

        if request.path.startswith("/api/"):
            return jsonify({"error": "unauthorized"}), 401, {"WWW-Authenticate": "Bearer"}
        reason = g.get("staff_session_ended")
        if reason == "idle":
            minutes = current_app.config["STAFF_IDLE_MINUTES"]
            flash(
                f"You were logged out. After {minutes} minutes without activity we log you out "
                "to protect patients' information.",
                "info",
            )
        elif reason == "account_changed":
            flash("An administrator changed your account. Please log in again.", "info")
        elif reason:
            flash("You were logged out. Please log in again.", "info")
        # a page (not a form's action) to come back to after the login
        back = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("staff.login", next=back))


def bearer_user():
    """The staff user behind an Authorization: Bearer header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return services.user_for_token(token.strip())
