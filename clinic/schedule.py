"""The one periodic schedule of Celery beat."""

from datetime import timedelta


def beat_schedule(config: dict) -> dict:
    """Every periodic task, declared in one place."""
    return {
        "purge-stale-intake-drafts": {
            "task": "intake.purge_stale_drafts",
            "schedule": timedelta(hours=1),
        },
    }
