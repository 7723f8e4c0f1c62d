"""The one periodic schedule of Celery beat."""

from datetime import timedelta


def beat_schedule(config: dict) -> dict:
    """Every periodic task, declared in one place."""
    return {
        "dispatch-notifications": {
            "task": "notifications.dispatch",
            "schedule": timedelta(seconds=config["DISPATCH_INTERVAL_SECONDS"]),
        },
        "purge-stale-intake-drafts": {
            "task": "intake.purge_stale_drafts",
            "schedule": timedelta(hours=1),
        },
        "purge-expired-idempotency-records": {
            "task": "scheduling.purge_idempotency_records",
            "schedule": timedelta(hours=1),
        },
    }
