"""Notifications: every message is a row, claimed by a dispatcher and sent by one Celery task."""
