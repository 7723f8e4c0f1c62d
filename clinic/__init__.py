"""Clinic: consultation intake, scheduling and follow-up for MILD spine clinics."""

from __future__ import annotations

import logging

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings from the environment, then the test overrides in ``config``."""
    from clinic.config import from_environment
    from clinic.jsonout import JSONProvider

    settings = from_environment()
    settings.update(config or {})
    app = Flask(__name__, instance_path=settings["INSTANCE_PATH"])
    app.json = JSONProvider(app)  # Flask's JSON, written by orjson (clinic/jsonout.py)
    app.config.update(settings)
    _configure_logging(app)
    _check_data_files(app)
    _register_extensions(app)
    _register_converters(app)
    _register_blueprints(app)
    _register_web(app)
    _register_commands(app)
    return app


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _check_data_files(app: Flask) -> None:
    """Refuse to start on clinic data files that would hide a red flag or fail at run time."""
    from clinic.config import ConfigError
    from clinic.startup_checks import problems

    found = problems(app.config)
    if found:
        raise ConfigError("; ".join(found))


def _register_extensions(app: Flask) -> None:
    import clinic.followup.models
    import clinic.intake.models
    import clinic.models
    import clinic.notifications.models
    import clinic.notifications.outbox
    import clinic.scheduling.models  # noqa: F401  (every table in the metadata, for migrations)
    from clinic.celery_app import celery_init_app
    from clinic.database import configure_engine
    from clinic.extensions import csrf, db, limiter, migrate
    from clinic.staff.auth import init_auth

    db.init_app(app)
    configure_engine(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    limiter.init_app(app)  # before CSRF, so refused POSTs count against the limit too
    csrf.init_app(app)
    init_auth(app)
    celery_init_app(app)


def _register_converters(app: Flask) -> None:
    from clinic.http import register_converters

    register_converters(app)


def _register_blueprints(app: Flask) -> None:
    from clinic import health
    from clinic.api import bp as api_bp
    from clinic.followup.views import bp as followup_bp
    from clinic.intake.views import bp as intake_bp
    from clinic.notifications.views import bp as notifications_bp
    from clinic.scheduling.feeds import feeds_bp
    from clinic.scheduling.views import bp as scheduling_bp
    from clinic.staff.views import bp as staff_bp

    app.register_blueprint(health.bp)
    app.register_blueprint(intake_bp)
    app.register_blueprint(scheduling_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(feeds_bp)
    app.register_blueprint(followup_bp)
    app.register_blueprint(notifications_bp)


def _register_web(app: Flask) -> None:
    from clinic import templating
    from clinic.errors import register_error_handlers
    from clinic.http import register_security_headers

    register_security_headers(app)
    register_error_handlers(app)
    templating.init_app(app)


def _register_commands(app: Flask) -> None:
    from clinic.cli import register

    register(app)
