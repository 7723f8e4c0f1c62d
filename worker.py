"""The Celery entry point: ``celery -A worker worker`` and ``celery -A worker beat``."""

from clinic import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
