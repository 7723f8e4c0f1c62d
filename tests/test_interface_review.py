"""The CLI of PRODUCT.md's fixed interface: bad arguments get a clear error, not a traceback."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from clinic.extensions import db
from clinic.models import StaffUser

# A byte that is not UTF-8 in a shell argument reaches Python as a lone surrogate.
NOT_UTF8 = "a\udcff"


@pytest.mark.parametrize(
    "args",
    [
        ["create-staff", f"{NOT_UTF8}@clinic.test", "--role", "admin", "--password", "x" * 12],
        [
            "create-staff",
            "ok@clinic.test",
            "--role",
            "admin",
            "--password",
            "x" * 12,
            "--name",
            NOT_UTF8,
        ],
        ["create-staff", "ok@clinic.test", "--role", "admin", "--password", NOT_UTF8 * 8],
        ["create-staff", "a\x01@clinic.test", "--role", "admin", "--password", "x" * 12],
        ["create-api-token", f"{NOT_UTF8}@clinic.test"],
        ["revoke-api-tokens", f"{NOT_UTF8}@clinic.test"],
    ],
    ids=["email", "name", "password", "control", "token", "revoke"],
)
def test_arguments_that_are_not_text_are_a_usage_error(app, args):
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Invalid value" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 0


def test_accented_names_are_fine(app):
    result = app.test_cli_runner().invoke(
        args=[
            "create-staff",
            "zoe@clinic.test",
            "--role",
            "nurse",
            "--password",
            "correct horse battery",
            "--name",
            "Zoë Núñez",
        ]
    )
    assert result.exit_code == 0, result.output
    token = app.test_cli_runner().invoke(args=["create-api-token", "zoe@clinic.test"])
    assert token.exit_code == 0 and len(token.output.strip()) > 20
