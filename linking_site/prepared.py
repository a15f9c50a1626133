"""Hand-written SQL for the few statements on the agent API's hot path, prepared on PostgreSQL.

The ORM compiles a query on every call and PostgreSQL plans it on every call; for the token
request's four-table join that is most of its database time (bench/README.md). These helpers run
fixed SQL through Django's connection, logged and error-wrapped like any ORM query (so query
counts, ``execute_wrapper`` and ``DatabaseError`` behave as usual), and on PostgreSQL as
server-side prepared statements: parsed and planned once per connection, then only executed.

``DATABASE_PREPARED_STATEMENTS=off`` turns preparing off (a pooler in transaction mode that cannot
keep prepared statements, such as PgBouncer before 1.21); the SQL then runs like any other query.
Everything else in the site keeps Django's default client-side binding and is never prepared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


@functools.cache
def _prepared_cursor_class() -> type:
    import psycopg  # only on PostgreSQL

    class PreparedCursor(psycopg.Cursor):
        """Server-side binding, and every statement prepared (psycopg keeps the plan per connection)."""

        def execute(self, query, params=None, *, prepare=True, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparedCursor


def _cursor() -> CursorWrapper:
    """A cursor for one statement: prepared on PostgreSQL when allowed, else Django's own."""
    connection.ensure_connection()
    raw_connection = connection.connection
    if connection.vendor != "postgresql" or getattr(raw_connection, "prepare_threshold", None) is None:
        return connection.cursor()
    raw = _prepared_cursor_class()(raw_connection)
    return _LoggedCursor(raw, connection) if connection.queries_logged else connection.make_cursor(raw)


class _LoggedCursor(CursorDebugWrapper):
    """Django's query log for a prepared statement: psycopg keeps no interpolated text of those,
    so the log shows the statement with its placeholders (and so never a value)."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Rows of one statement (``%s`` placeholders, every value bound, never formatted in)."""
    with _cursor() as cursor:
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


def columns(alias: str, fields: Sequence[Field]) -> str:
    """``alias."col", ...`` for ``fields``, quoted for this database."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in fields)


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


_converters: dict[tuple, tuple] = {}


def model_from_row(model: type[M], fields: Sequence[Field], values: Sequence[Any]) -> M:
    """An instance of ``model`` from raw column values, converted exactly as the ORM converts them
    (JSON text to objects, SQLite's text datetimes to aware datetimes, ...). Unlisted fields are
    deferred, as with ``only()``."""
    db = connections[DEFAULT_DB_ALIAS]
    cache_key = (model, tuple(f.attname for f in fields), db.vendor)
    plan = _converters.get(cache_key)
    if plan is None:
        converters = []
        for index, f in enumerate(fields):
            column = f.get_col(model._meta.db_table)
            functions = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if functions:
                converters.append((index, column, functions))
        names = [f.attname for f in fields]
        every_field = names == [f.attname for f in model._meta.concrete_fields]
        plan = _converters[cache_key] = (converters, None if every_field else names)
    converters, names = plan
    if converters:
        values = list(values)
        for index, column, functions in converters:
            value = values[index]
            for function in functions:
                value = function(value, column, db)
            values[index] = value
    return model.from_db(db.alias, names, values)


def insert(obj: Model, *, wait_for_disk: bool = True) -> None:
    """``INSERT ... RETURNING`` the primary key of a new ``obj``: what ``Model.save()`` writes
    (fields' ``pre_save``, database preparation), without its per-call query compilation.

    ``wait_for_disk=False``, on PostgreSQL outside a transaction, commits the row without waiting
    for the WAL flush: ``set_config('synchronous_commit', 'off', true)`` inside the statement
    applies to its own implicit transaction only. The row is written and visible at once; only a
    crash of the database server itself within a fraction of a second (``wal_writer_delay``) could
    lose it. Elsewhere, and inside a transaction (whose durability it must not change), it is the
    same insert as always.

    Save signals are not sent; use it only for models that have no receivers (append-only logs).
    """
    fields = _insert_fields(type(obj))
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    asynchronous = not wait_for_disk and connection.vendor == "postgresql" and not connection.in_atomic_block
    (row,) = fetch_all(_insert_statement(type(obj), asynchronous=asynchronous), values)
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias


def _insert_fields(model: type[Model]) -> list[Field]:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _insert_statement(model: type[Model], *, asynchronous: bool) -> str:
    def build() -> str:
        quote = connection.ops.quote_name
        names = ", ".join(quote(f.column) for f in _insert_fields(model))
        placeholders = ", ".join(["%s"] * len(_insert_fields(model)))
        returning = f"RETURNING {quote(model._meta.pk.column)}"
        if asynchronous:
            return (
                f"INSERT INTO {table(model)} ({names}) SELECT {placeholders} "  # noqa: S608
                f"FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit {returning}"
            )
        return f"INSERT INTO {table(model)} ({names}) VALUES ({placeholders}) {returning}"  # noqa: S608

    return statement(f"insert.{model._meta.label}.{'async' if asynchronous else 'sync'}", build)
