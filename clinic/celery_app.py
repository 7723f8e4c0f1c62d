"""Celery wired through the Flask app factory."""

import logging
import traceback

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded, TaskPredicate
from flask import Flask

from clinic.email import PermanentSendError, TemporarySendError

logger = logging.getLogger(__name__)

# Raised through as they are: Celery's own control flow (retry, ignore, reject, time limit)
# and the send errors, whose text is an SMTP code by design.
_PASS_THROUGH = (TaskPredicate, SoftTimeLimitExceeded, PermanentSendError, TemporarySendError)


class TaskFailed(Exception):
    """A task body raised; the text names the exception's type, nothing of its message.

    Celery logs a failing task's exception with its message and traceback. Messages may quote
    patient data: SQLAlchemy's quote the statement's parameters, PostgreSQL's the key values.
    """


def _redacted(task_name: str, exc: Exception) -> TaskFailed:
    """Log where ``exc`` was raised (frames, no message) and say what it was."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    logger.error(
        "task %s raised %s\n%s", task_name, kind, "".join(traceback.format_tb(exc.__traceback__))
    )
    return TaskFailed(kind)


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks run inside a Flask app context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                try:
                    return self.run(*args, **kwargs)
                except _PASS_THROUGH:
                    raise
                except Exception as exc:
                    failure = _redacted(self.name, exc)
            # Raised outside the handler, so the original is not even its context.
            raise failure

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    from clinic.schedule import beat_schedule

    celery.conf.beat_schedule = beat_schedule(app.config)
    # Every task module, so a worker knows each task whichever views it never imports.
    import clinic.intake.tasks
    import clinic.notifications.tasks
    import clinic.scheduling.tasks  # noqa: F401

    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def enqueue(task, *args) -> None:
    """Send a task through the current Flask app's own Celery app (not a global default)."""
    from flask import current_app

    current_app.extensions["celery"].tasks[task.name].apply_async(args=args)


def enqueue_each(task, calls: list[tuple]) -> list[tuple[tuple, str]]:
    """Send ``task`` once per tuple of arguments in ``calls``, through one producer.

    On Redis the messages go out together: kombu's publish batch buffers them in one pipeline
    and writes it when the block ends, one round trip for the lot instead of one (and a new
    client object) per message. Other brokers publish each at once. Returns the calls that
    could not be sent, each with the error's type name. When the batch's write fails, whether
    any of its messages arrived is unknown, so all count as failed: callers must tolerate a
    message that arrives anyway (a send task finds its row already sent). When no producer can
    be had, every call counts as failed.
    """
    from flask import current_app

    if not calls:  # a pass with nothing due takes no producer (nor a broker connection)
        return []
    celery = current_app.extensions["celery"]
    bound = celery.tasks[task.name]
    failed: list[tuple[tuple, str]] = []
    buffered: list[tuple] = []
    try:
        # Room for every call (a message may take a command or two): one write, at the end.
        with (
            celery.producer_or_acquire() as producer,
            producer.batch(max_size=2 * len(calls) + 1),
        ):
            for args in calls:
                try:
                    bound.apply_async(args=args, producer=producer)
                except Exception as exc:
                    failed.append((args, type(exc).__name__))
                else:
                    buffered.append(args)
    except Exception as exc:
        # The batch's write failed (all buffered), or no producer could be had (none tried).
        untried = calls[len(failed) + len(buffered) :]
        failed += [(args, type(exc).__name__) for args in [*buffered, *untried]]
    return failed
