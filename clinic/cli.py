"""Flask commands.

create-staff, create-api-token, revoke-api-tokens, seed-demo, dispatch-notifications.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from clinic.errors import ValidationFailed
from clinic.extensions import db
from clinic.limits import storable
from clinic.models import Role, StaffUser, utcnow
from clinic.staff import services


def _text(ctx, param, value):
    """Refuse text no database can store: bytes that are not UTF-8 in the shell's arguments
    arrive as lone surrogates, and control characters are never meant."""
    if value is None:
        return value
    if not storable(value) or any(c in value for c in "\t\r\n"):
        raise click.BadParameter("contains control characters or bytes that are not UTF-8.")
    return value


def register(app: Flask) -> None:
    app.cli.add_command(create_staff)
    app.cli.add_command(create_api_token)
    app.cli.add_command(revoke_api_tokens)
    app.cli.add_command(seed_demo)
    app.cli.add_command(dispatch_notifications)


@click.command("create-staff")
@with_appcontext
@click.argument("email", callback=_text)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--password",
    default=None,
    callback=_text,
    help="At least 12 characters; asked for if omitted.",
)
@click.option(
    "--name", "full_name", default="", callback=_text, help="Full name shown to colleagues."
)
def create_staff(email: str, role: str, password: str | None, full_name: str) -> None:
    """Create a staff user."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = services.create_staff(email, role, password, full_name=full_name, now=utcnow())
    except ValidationFailed as exc:
        db.session.rollback()
        for field, messages in exc.errors.items():
            click.echo(f"{field}: {' '.join(messages)}", err=True)
        raise SystemExit(2) from None
    db.session.commit()
    click.echo(f"Created {user.email} ({user.role}).")


def _staff_by_email(email: str) -> StaffUser | None:
    return db.session.scalars(
        select(StaffUser).where(func.lower(StaffUser.email) == email.strip().lower())
    ).first()


@click.command("create-api-token")
@with_appcontext
@click.argument("email", callback=_text)
def create_api_token(email: str) -> None:
    """Print a new bearer token for a staff user."""
    user = _staff_by_email(email)
    if user is None or not user.active:
        click.echo(f"No active staff user {email}.", err=True)
        raise SystemExit(2)
    token = services.create_api_token(user, now=utcnow())
    db.session.commit()
    click.echo(token)


@click.command("revoke-api-tokens")
@with_appcontext
@click.argument("email", callback=_text)
def revoke_api_tokens(email: str) -> None:
    """Revoke every bearer token of a staff user (a leaked or unused token)."""
    user = _staff_by_email(email)
    if user is None:
        click.echo(f"No staff user {email}.", err=True)
        raise SystemExit(2)
    count = services.revoke_api_tokens(user, actor=None, now=utcnow())
    db.session.commit()
    click.echo(f"Revoked {count} token{'' if count == 1 else 's'} of {user.email}.")


@click.command("seed-demo")
@with_appcontext
@click.option("--if-empty", is_flag=True, help="Do nothing when staff users exist already.")
def seed_demo(if_empty: bool) -> None:
    """Fill a believable demo clinic: staff users and consultation requests."""
    from clinic import demo

    if if_empty and db.session.scalar(select(func.count(StaffUser.id))):
        click.echo("Database already has data; not seeding.")
        return
    password = secrets.token_urlsafe(12)
    summary = demo.seed(password=password, now=utcnow())
    db.session.commit()
    click.echo(summary)
    click.echo(f"Every demo staff user has the password: {password}")
    path = Path(current_app.instance_path) / "demo-credentials.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{summary}\nPassword for every demo staff user: {password}\n")
    path.chmod(0o600)
    click.echo(f"(also written to {path.name} in the instance folder)")


@click.command("dispatch-notifications")
@with_appcontext
def dispatch_notifications() -> None:
    """One dispatcher pass: claim due messages and hand them to the send task."""
    from clinic.notifications import dispatcher

    result = dispatcher.dispatch(utcnow())
    click.echo(
        f"Claimed {result.claimed} due message(s); released {result.released} stale claim(s)"
        + (f"; {result.enqueue_failed} could not be queued" if result.enqueue_failed else "")
        + "."
    )
