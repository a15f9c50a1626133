"""Running the agent API's few hand-written statements, prepared on PostgreSQL.

The ORM compiles a query on every call and PostgreSQL plans it on every call; for the token
request's four-table join that is most of its database time (bench/README.md). These helpers run
fixed SQL (written in ``vault.hotpath``, the one module that writes SQL) through Django's
connection, logged and error-wrapped like any ORM query (so query counts, ``execute_wrapper`` and
``DatabaseError`` behave as usual), and on PostgreSQL as server-side prepared statements: parsed
and planned once per connection, then only executed.

``DATABASE_PREPARED_STATEMENTS=off`` turns preparing off (a pooler in transaction mode that cannot
keep prepared statements, such as PgBouncer before 1.21); the SQL then runs like any other query.
Everything else in the site keeps Django's default client-side binding and is never prepared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Field, Model, signals
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute

M = TypeVar("M", bound=Model)


@functools.cache
def _prepared_cursor_class() -> type:
    import psycopg  # only on PostgreSQL (an optional dependency)
    from psycopg.types.datetime import TimestamptzLoader

    class PreparedCursor(psycopg.Cursor):
        """Server-side binding, and every statement prepared (psycopg keeps the plan per connection).

        Times are read by psycopg's own loader: Django's wraps it in Python to set the time zone
        on each value, which changes nothing when the session's zone is UTC (Django's with
        ``USE_TZ``; psycopg then gives ``timezone.utc`` itself) and cost more than the statement's
        other columns together.
        """

        def __init__(self, connection, **kwargs):
            super().__init__(connection, **kwargs)
            if settings.USE_TZ and connection.info.timezone is UTC:
                self.adapters.register_loader("timestamptz", TimestamptzLoader)

        def execute(self, query, params=None, *, prepare=True, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparedCursor


def _cursor() -> tuple[CursorWrapper, bool]:
    """A cursor for one statement, and whether it is kept for the next one (else closed after).

    On PostgreSQL, when preparing is allowed and no query log is kept, each connection keeps one
    prepared cursor: psycopg then looks up the loaders of a statement's columns once, not on every
    execution (per column and per call, that cost more than the statement's own decoding).
    """
    # The thread's connection itself, looked up once: each ``connection.x`` through the proxy
    # is a thread-local lookup, and this runs on every token request.
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    raw_connection = db.connection
    if db.vendor != "postgresql" or getattr(raw_connection, "prepare_threshold", None) is None:
        return db.cursor(), False
    if db.queries_logged:
        return _LoggedCursor(_prepared_cursor_class()(raw_connection), db), False
    kept = getattr(db, "_vault_prepared_cursor", None)
    if kept is None or kept.cursor.connection is not raw_connection or kept.cursor.closed:
        kept = db._vault_prepared_cursor = db.make_cursor(_prepared_cursor_class()(raw_connection))
    return kept, True


class _LoggedCursor(CursorDebugWrapper):
    """Django's query log for a prepared statement: psycopg keeps no interpolated text of those,
    so the log shows the statement with its placeholders (and so never a value)."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Rows of one statement (``%s`` placeholders, every value bound, never formatted in)."""
    cursor, kept = _cursor()
    if kept:
        cursor.execute(sql, params)
        return cursor.fetchall()
    with cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_statements: dict[tuple[str, str], str] = {}


def statement(name: str, build: Callable[[], str]) -> str:
    """The SQL ``build()`` makes, built once per process and database vendor: assembling it from
    model metadata on every request would cost more than running it."""
    cache_key = (name, connection.vendor)
    sql = _statements.get(cache_key)
    if sql is None:
        sql = _statements[cache_key] = build()
    return sql


class _RowPlan(NamedTuple):
    """How rows of one shape (a model, the columns read) become instances, for one database."""

    fields: Sequence[Field]  # kept, so the ``id()`` the plan is found by cannot be reused
    converters: list[tuple[int, Any, list]]
    names: list[str] | None  # None: every concrete field, in order
    attnames: tuple[str, ...] | None  # set when an instance can be made without __init__


_plans: dict[tuple, _RowPlan] = {}
# Plain attributes: setting one is storing it in the instance's __dict__.
_PLAIN_ATTRIBUTES = (DeferredAttribute, ForeignKeyDeferredAttribute)


def model_from_row(model: type[M], fields: Sequence[Field], values: Sequence[Any]) -> M:
    """An instance of ``model`` from raw column values, converted exactly as the ORM converts them
    (JSON text to objects, SQLite's text datetimes to aware datetimes, ...). Unlisted fields are
    deferred, as with ``only()``. ``fields`` is one of the caller's constant tuples.

    The instance is made as unpickling makes one (``__new__`` and its attributes) when that is
    the same as ``Model.from_db``: no ``pre_init``/``post_init`` receivers, no ``from_db`` of
    the model's own, every field a plain attribute. ``from_db``'s ``__init__`` walks every
    concrete field and sends both signals; on the token request's three rows that was the
    largest part of its Python (bench/README.md).
    """
    db = connections[DEFAULT_DB_ALIAS]
    plan = _plans.get((model, id(fields), db.vendor))
    if plan is None:
        plan = _plans[(model, id(fields), db.vendor)] = _plan(model, fields, db)
    converters = plan.converters
    if converters:
        values = list(values)
        for index, column, functions in converters:
            value = values[index]
            for function in functions:
                value = function(value, column, db)
            values[index] = value
    if plan.attnames is not None and not (
        signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)
    ):
        instance = model.__new__(model)
        instance._state = state = ModelState()
        state.adding = False
        state.db = db.alias
        instance.__dict__.update(zip(plan.attnames, values, strict=True))
        return instance
    return model.from_db(db.alias, plan.names, values)


def _plan(model: type[Model], fields: Sequence[Field], db) -> _RowPlan:
    converters = []
    for index, f in enumerate(fields):
        column = f.get_col(model._meta.db_table)
        functions = db.ops.get_db_converters(column) + column.get_db_converters(db)
        if functions:
            converters.append((index, column, functions))
    names = [f.attname for f in fields]
    every_field = names == [f.attname for f in model._meta.concrete_fields]
    plain = model.from_db.__func__ is Model.from_db.__func__ and all(
        type(model.__dict__.get(f.attname)) in _PLAIN_ATTRIBUTES for f in fields
    )
    return _RowPlan(
        fields=fields,
        converters=converters,
        names=None if every_field else names,
        attnames=tuple(names) if plain else None,
    )
