"""The baseline for bench/intake.py: bare Flask + Flask-SQLAlchemy, one JSON INSERT per POST.

It answers ``POST /api/v1/consultation-requests`` (the same path as the real app, so the same
wrk script drives both) by parsing the JSON body and storing it whole in one JSON column of its
own table, then returns 201 with the new id. No validation, no patient match, no Celery.

Served by gunicorn as ``baseline_app:app`` from this folder, with DATABASE_URL set. The table
is made once before the workers start: ``python baseline_app.py create-table``.

``baseline_app:floor`` is the same insert, then, after the commit, the one thing a booking may
not leave out that the insert does not already do: it hands a confirmation task to Celery
(CELERY_BROKER_URL, the clinic's Celery settings), as the clinic does for every booking
(``notifications.outbox``). No worker runs it. bench/booking.py measures it as the floor: what
any booking could reach in this stack before it checks a token, reads a schedule or writes an
audit row.
"""

from __future__ import annotations

import os
import sys

from celery import Celery
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TABLE = "bench_baseline_request"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class BaselineRequest(db.Model):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[dict] = mapped_column(JSON)


def _sqlalchemy_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _confirmation_task(broker_url: str):
    """A task like the clinic's send task, on a Celery app with the clinic's settings."""
    redis = broker_url.partition("://")[0] in {"redis", "rediss"}
    celery = Celery("bench_floor", set_as_current=False)
    celery.conf.update(
        broker_url=broker_url,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"ack_emulation": False} if redis else {},
        task_acks_late=True,
        timezone="UTC",
    )

    @celery.task(name="bench.floor.send")
    def send(row_id: int) -> None:  # never runs: no worker consumes the queue
        pass

    return send


def create_app(database_url: str, broker_url: str | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = _sqlalchemy_url(database_url)
    db.init_app(app)
    send = _confirmation_task(broker_url) if broker_url else None

    @app.post("/api/v1/consultation-requests")
    def create():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": "The body must be a JSON object."}), 422
        row = BaselineRequest(body=body)
        db.session.add(row)
        db.session.flush()  # INSERT ... RETURNING id
        row_id = row.id  # read before commit: no SELECT to refresh the expired row
        db.session.commit()
        if send is not None:  # the floor: the confirmation, after the commit
            send.apply_async(args=(row_id,))
        return jsonify({"id": row_id}), 201

    @app.get("/ping")
    def ping():
        return jsonify({"status": "ok"})

    return app


app = create_app(os.environ["DATABASE_URL"])
floor = create_app(os.environ["DATABASE_URL"], os.environ.get("CELERY_BROKER_URL") or "memory://")


if __name__ == "__main__":
    if sys.argv[1:] != ["create-table"]:
        sys.exit("usage: python baseline_app.py create-table")
    with app.app_context():
        db.create_all()
