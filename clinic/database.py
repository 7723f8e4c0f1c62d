"""Engine settings that depend on the database in use."""

from __future__ import annotations

import functools
from typing import TypeVar

from flask import Flask
from sqlalchemy import event, inspect
from sqlalchemy.orm import MANYTOONE, Mapper, make_transient_to_detached

from clinic.extensions import db

_T = TypeVar("_T")


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


def insert(obj: _T) -> _T:
    """INSERT one new ORM object at once with a plain Core statement; keep it in the session.

    On the busiest paths (an intake, a booking, their message and audit rows) the unit of work
    costs about as much CPU again as the statement itself. The object ends as after a flush:
    persistent, with its id and column defaults read back by the same statement. A many-to-one
    relationship given as an object is stored as that object's id, which it must have already.
    """
    session = db.session()
    session.flush()  # rows this one refers to, and changes that must come first, go first
    state = inspect(obj)
    mapper = state.mapper
    given = state.dict
    for relationship, pairs in _many_to_one(mapper):
        target = given.get(relationship)
        if target is not None:
            for local, remote in pairs:
                given[local] = getattr(target, remote)
    values = {}
    for attribute, column in _columns(mapper):
        if attribute in given:
            values[column] = given[attribute]
    statement, returned = _insert_statement(mapper, frozenset(values))
    row = session.connection().execute(statement, values).one()
    given.update(zip(returned, row, strict=True))
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


@functools.cache
def _many_to_one(mapper: Mapper) -> list[tuple[str, list[tuple[str, str]]]]:
    """(relationship, [(local attribute, the target's attribute)]) of each many-to-one."""
    return [
        (
            rel.key,
            [
                (
                    mapper.get_property_by_column(local).key,
                    rel.mapper.get_property_by_column(remote).key,
                )
                for local, remote in rel.local_remote_pairs
            ],
        )
        for rel in mapper.relationships
        if rel.direction is MANYTOONE
    ]


@functools.cache
def _columns(mapper: Mapper) -> list[tuple[str, str]]:
    """(attribute, column) of each mapped column."""
    return [(prop.key, prop.columns[0].key) for prop in mapper.column_attrs]


@functools.cache
def _insert_statement(mapper: Mapper, given: frozenset[str]):
    """Built once per table and set of given columns; returns the others (id, defaults), as
    the attributes they fill."""
    table = mapper.local_table
    returned = [column for column in table.columns if column.key not in given]
    attributes = [mapper.get_property_by_column(column).key for column in returned]
    return table.insert().returning(*returned), attributes
