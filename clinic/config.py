"""Configuration: defaults, and the environment read in exactly one place."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


class ConfigError(RuntimeError):
    """Raised at start-up when a required setting is missing."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _transport_options(broker_url: str) -> dict:
    """Redis's emulated acknowledgements off (see ``broker_transport_options`` above)."""
    redis = {"redis", "rediss", "redis+socket", "sentinel"}
    return {"ack_emulation": False} if broker_url.partition("://")[0] in redis else {}


def _send_hours(value: str) -> tuple[int, int]:
    start, _, end = value.partition("-")
    hours = (int(start), int(end))
    if not (0 <= hours[0] < hours[1] <= 24):
        raise ConfigError("NOTIFY_SEND_HOURS must look like 9-18 (0-24 for any time)")
    return hours


def from_environment(env: dict[str, str] | None = None) -> dict:
    """Build the settings dict from environment variables (the names of PRODUCT.md)."""
    env = dict(os.environ if env is None else env)
    instance = Path(env.get("CLINIC_INSTANCE_PATH") or INSTANCE_DIR)
    production = env.get("CLINIC_ENV", "development") == "production"
    secret = env.get("SECRET_KEY")
    if not secret:
        if production:
            raise ConfigError("SECRET_KEY must be set when CLINIC_ENV=production")
        secret = _dev_secret(instance)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'clinic.sqlite3'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    broker = env.get("CELERY_BROKER_URL") or f"sqla+sqlite:///{instance / 'celery-broker.sqlite3'}"
    redis_url = env.get("REDIS_URL") or ""
    port = int(env.get("PORT") or 5000)
    return {
        "ENV_NAME": "production" if production else "development",
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": database_url,
        # pool_pre_ping off: database.py pings only connections that sat idle, which covers a
        # database restart without a round trip on every request.
        # hide_parameters: SQLAlchemy's error texts otherwise quote every bound value (names,
        # emails, answers) into whatever logs them.
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_recycle": 1800,
            "pool_pre_ping": False,
            "hide_parameters": True,
        },
        "CELERY": {
            "broker_url": broker,
            "task_ignore_result": True,
            "task_serializer": "json",
            "accept_content": ["json"],
            "broker_connection_retry_on_startup": True,
            # The database is the queue of record: a task lost with a killed worker or a
            # restarted broker is sent again from its row (the dispatcher releases claims
            # older than NOTIFY_CLAIM_TIMEOUT_SECONDS; the periodic tasks simply run again).
            # So Redis's emulated acknowledgements (an unacked copy of every message, written
            # on receipt and removed on ack, restored only after an hour) are off: they were
            # about 40 % of the worker main process's CPU and added no delivery guarantee.
            # Only Redis has the option: other transports (the SQLite broker of `make run`)
            # would pass it on to their own client and refuse to start.
            "broker_transport_options": _transport_options(broker),
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "timezone": "UTC",
        },
        "REDIS_URL": redis_url,
        "BASE_URL": (env.get("BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
        "PORT": port,
        "CLINIC_TIMEZONE": env.get("CLINIC_TIMEZONE") or "America/New_York",
        # Used in emails too: a neutral name keeps the specialty out of patients' inboxes.
        "CLINIC_NAME": env.get("CLINIC_NAME") or "Riverside Clinic",
        "CLINIC_PHONE": env.get("CLINIC_PHONE") or "(555) 010-0100",
        "STAFF_ALERT_EMAIL": env.get("STAFF_ALERT_EMAIL") or "frontdesk@clinic.example",
        "SMTP_HOST": env.get("SMTP_HOST") or "127.0.0.1",
        "SMTP_PORT": int(env.get("SMTP_PORT") or 8025),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or "",
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or "",
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS"), False),
        "SMTP_TIMEOUT": float(env.get("SMTP_TIMEOUT") or 10),
        "EMAIL_RETRY_BASE_SECONDS": float(env.get("EMAIL_RETRY_BASE_SECONDS") or 15),
        "MAIL_FROM": env.get("MAIL_FROM") or "Clinic <no-reply@clinic.example>",
        "NOTIFY_SEND_HOURS": _send_hours(env.get("NOTIFY_SEND_HOURS") or "9-18"),
        "DISPATCH_INTERVAL_SECONDS": int(env.get("DISPATCH_INTERVAL_SECONDS") or 60),
        # A claim unsent after this long is released (default: 5 intervals, at least 5 minutes).
        "NOTIFY_CLAIM_TIMEOUT_SECONDS": int(env.get("NOTIFY_CLAIM_TIMEOUT_SECONDS") or 0),
        "NOTIFY_MAX_ATTEMPTS": int(env.get("NOTIFY_MAX_ATTEMPTS") or 8),
        "NOTIFY_SCHEDULES_FILE": env.get("NOTIFY_SCHEDULES_FILE") or "",
        "NOTIFY_USE_FIRST_NAME": _bool(env.get("NOTIFY_USE_FIRST_NAME"), True),
        "FOLLOWUP_PLAN_FILE": env.get("FOLLOWUP_PLAN_FILE") or "",
        "ODI_PACK_FILE": env.get("ODI_PACK_FILE") or "",
        "APPOINTMENT_INSTRUCTIONS_FILE": env.get("APPOINTMENT_INSTRUCTIONS_FILE") or "",
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "PUBLIC_POST_RATE_LIMIT": env.get("PUBLIC_POST_RATE_LIMIT") or "30/minute;300/hour",
        "STAFF_IDLE_MINUTES": int(env.get("STAFF_IDLE_MINUTES") or 15),
        "INTAKE_RULES_DIR": env.get("INTAKE_RULES_DIR") or "",
        "MAX_CONTENT_LENGTH": 256 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), production),
        "SESSION_COOKIE_NAME": "clinic_session",
        "WTF_CSRF_TIME_LIMIT": 3600 * 4,
        "REMEMBER_COOKIE_DURATION": 0,
    }


def _dev_secret(instance: Path) -> str:
    """A per-checkout random key, kept under instance/ so sessions survive restarts."""
    import secrets

    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
