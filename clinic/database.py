"""Engine settings that depend on the database in use."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event

from clinic.extensions import db


def configure_engine(app: Flask) -> None:
    """On SQLite, every transaction takes the write lock at BEGIN (BEGIN IMMEDIATE).

    SQLite lets one writer in at a time; starting as a writer means a booking's reads and its
    insert happen under the same lock, so the overlap trigger's check can't race, and no
    transaction fails half-way when it turns from reader to writer.
    """
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
