"""Celery wired through the Flask app factory."""

from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks run inside a Flask app context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    from clinic.schedule import beat_schedule

    celery.conf.beat_schedule = beat_schedule(app.config)
    # Every task module, so a worker knows each task whichever views it never imports.
    import clinic.intake.tasks
    import clinic.notifications.tasks  # noqa: F401

    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def enqueue(task, *args) -> None:
    """Send a task through the current Flask app's own Celery app (not a global default)."""
    from flask import current_app

    current_app.extensions["celery"].tasks[task.name].apply_async(args=args)
