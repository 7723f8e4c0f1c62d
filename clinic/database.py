"""Engine settings that depend on the database in use, and the one-statement INSERT of the
busiest paths."""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import Column, ColumnElement, Engine, bindparam, event, inspect, select
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import MANYTOONE, Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from clinic.extensions import db

_T = TypeVar("_T")


# A pooled connection unused for longer than this is checked with a round trip before use.
PING_AFTER_IDLE_SECONDS = 1.0


def configure_engine(app: Flask) -> None:
    """Ping connections that sat idle (server databases); BEGIN IMMEDIATE on SQLite."""
    with app.app_context():
        engine = db.engine
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _begin_as_writer(engine)
    else:
        _ping_idle_connections(engine)


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection before use when it has been idle for a while.

    SQLAlchemy's ``pool_pre_ping`` checks every checkout: a round trip on every request, about
    5 % of an intake's CPU. A connection checked in less than a second ago was alive then, and
    a database restart takes seconds, so the connections it killed have all been idle
    longer by the time they are used again: each is found dead here and replaced (the pool
    retries with a new connection on DisconnectionError), and no request fails for it.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection, record):
        record.info["idle_since"] = clock()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or clock() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection is gone") from exc


def clock() -> float:
    """Seconds on a monotonic clock (tests move it)."""
    return time.monotonic()


def _begin_as_writer(engine: Engine) -> None:
    """On SQLite, every transaction takes the write lock at BEGIN (BEGIN IMMEDIATE).

    SQLite lets one writer in at a time; starting as a writer means a booking's reads and its
    insert happen under the same lock, so the overlap trigger's check can't race, and no
    transaction fails half-way when it turns from reader to writer.
    """

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def insert(obj: _T, *, unless: ColumnElement[bool] | None = None, keep: bool = True) -> _T | None:
    """INSERT one new ORM object at once with a plain Core statement; keep it in the session.

    On the busiest paths (an intake, a booking, their message and audit rows) the unit of work
    costs about as much CPU again as the statement itself. The object ends as after a flush:
    persistent, with its id from the statement and its Python-side column defaults filled in.
    A many-to-one relationship given as an object is stored as that object's id, which it must
    have already.

    ``unless``: a condition (built once; its bound parameters named after the columns, so they
    take the object's values) under which nothing is inserted, decided by the same statement.
    Then the object stays out of the session and None is returned.

    ``keep=False``: for a row nothing changes later in this unit of work (an audit event, an
    acknowledgement for the dispatcher); it is not added to the session, which saves about a
    fifth of this function's CPU. Its attributes, id included, stay readable.
    """
    session = db.session()
    session.flush()  # rows this one refers to, and changes that must come first, go first
    values = column_values(obj)
    statement, returned = _insert_statement(inspect(obj).mapper, unless)
    row = session.connection().execute(statement, values).first()
    if row is None:
        return None
    stored(obj, dict(zip(returned, row, strict=True)), keep=keep)
    return obj


def fetch_one(statement: str, params: Mapping[str, Any] | None = None) -> tuple | None:
    """The first row of a plain SQL statement (the driver's ``%(name)s`` placeholders), run
    on the session's connection by the driver's own cursor.

    For the busiest statement only: for a textual statement SQLAlchemy builds its result
    object anew from the cursor's description on every execution, about a tenth of an
    intake's CPU. Otherwise it runs as any execute does: in the session's transaction, seen
    by the engine's ``before_cursor_execute`` listeners, its errors raised as SQLAlchemy's
    (parameters hidden) and a lost connection invalidated.
    """
    connection = db.session.connection()
    dbapi_connection = connection.connection
    cursor = dbapi_connection.cursor()
    dialect = connection.dialect
    try:
        if connection.dispatch.before_cursor_execute:
            connection.dispatch.before_cursor_execute(
                connection, cursor, statement, params, None, False
            )
        cursor.execute(statement, params)
        return cursor.fetchone()
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            params,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    finally:
        cursor.close()


def column_values(obj: object) -> dict[str, Any]:
    """What an INSERT of this new object sends, by column name.

    Python-side column defaults are filled in, on the object too; a many-to-one relationship
    given as an object becomes that object's id (None while the target has none).
    """
    state = instance_state(obj)  # inspect(obj) looks its type up first: a tenth of this
    mapper = state.mapper
    given = state.dict
    for relationship, pairs in _many_to_one(mapper):
        target = given.get(relationship)
        if target is not None:
            for local, remote in pairs:
                given[local] = getattr(target, remote)
    values = {}
    for attribute, column, default in _columns(mapper):
        if attribute not in given:
            given[attribute] = default()
        values[column] = given[attribute]
    return values


def stored(obj: object, made: dict[str, Any], *, keep: bool = True) -> None:
    """The new object's row was inserted: take what the database made (``made``, by
    attribute: the id...) and, with ``keep``, put it in the session as persistent and clean."""
    instance_state(obj).dict.update(made)
    if keep:
        make_transient_to_detached(obj)
        db.session.add(obj)


def insert_columns(model) -> list[str]:
    """The columns an INSERT of a new object of this model sends (``column_values``' keys)."""
    return [column for _, column, _ in _columns(inspect(model))]


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


def _from_database(column: Column) -> bool:
    """The database makes this column's value: an autoincrement key or a server default."""
    return column.server_default is not None or (column is column.table.autoincrement_column)


@functools.cache
def _columns(mapper: Mapper) -> list[tuple[str, str, Callable[[], Any]]]:
    """(attribute, column, its default when not given) of each column sent with an INSERT."""
    columns = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if _from_database(column):
            continue
        default = column.default
        if default is None:
            make = _none
        elif default.is_callable:
            make = functools.partial(default.arg, None)
        elif default.is_scalar:
            make = functools.partial(copy.copy, default.arg)
        else:
            raise TypeError(f"{column}: only Python-side defaults can be filled in")
        columns.append((prop.key, column.key, make))
    return columns


def _none() -> None:
    return None


@functools.cache
def _insert_statement(mapper: Mapper, unless: ColumnElement[bool] | None):
    """Built once per table (and condition); returns what the database made (the id)."""
    table = mapper.local_table
    returned = [column for column in table.columns if _from_database(column)]
    attributes = [mapper.get_property_by_column(column).key for column in returned]
    if unless is None:
        statement = table.insert()
    else:
        sent = [table.c[column] for _, column, _ in _columns(mapper)]
        values = select(*(bindparam(c.key, type_=c.type) for c in sent)).where(~unless)
        statement = table.insert().from_select(sent, values)
    return statement.returning(*returned), attributes
