"""Intake forms. Fields come from fields.py; the form itself carries the CSRF token."""

from flask_wtf import FlaskForm
from wtforms import SubmitField


class IntakeStepForm(FlaskForm):
    """One step of the intake; answers are parsed and checked by schema.py."""

    submit = SubmitField("Continue")


class EmergencyChoiceForm(FlaskForm):
    read = SubmitField("I've read this")
    continue_anyway = SubmitField("Continue my request anyway")
