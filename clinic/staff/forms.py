"""Staff forms: CSRF-protected, with the field checks a browser can't be trusted with."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from clinic.intake.models import RequestStatus
from clinic.models import Role
from clinic.staff.roles import ROLE_LABELS


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class StatusForm(FlaskForm):
    status = SelectField(
        "New status",
        choices=[(s.value, s.value.replace("_", " ").capitalize()) for s in RequestStatus],
    )
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=1000)])


class ActionForm(FlaskForm):
    """A bare POST with a CSRF token (acknowledge, callback done, revoke tokens)."""


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    full_name = StringField("Full name", validators=[Optional(), Length(max=200)])
    role = SelectField("Role", choices=[(r.value, ROLE_LABELS[r]) for r in Role])
    password = PasswordField(
        "Password (at least 12 characters)", validators=[DataRequired(), Length(min=12, max=256)]
    )


class EditUserForm(FlaskForm):
    role = SelectField("Role", choices=[(r.value, ROLE_LABELS[r]) for r in Role])
    active = BooleanField("Account active")


class NoteForm(FlaskForm):
    note = StringField(
        "Note (optional)", validators=[Length(max=1000, message="Use at most 1000 characters.")]
    )
