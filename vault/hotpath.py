"""Every hand-written SQL statement of the site: the agent API's hot path, and nothing else.

The token request runs on nearly every agent call, so its reads are three fixed statements and its
one write a fixed insert, prepared on PostgreSQL (``vault.prepared``), where the ORM's per-call
compilation would cost more than the database round trip (bench/README.md). They live here, and
only here, with their row types: callers get a ``ResolvedAccount``, a ``KeyLookup`` or an
``AgentKey``, never a row to take apart by position (tests/test_layout_sql.py holds that line).

Everything else in the site, the other activity records included, goes through the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model
from social_django.models import UserSocialAuth

from accounts.models import IdentityDetails, User
from activity.models import Activity

from . import prepared
from .activity_kinds import VaultKind
from .models import AgentKey, TokenSet

_KEY_FIELDS = tuple(AgentKey._meta.concrete_fields)
# Everything but the password hash, which no agent request needs (it stays deferred).
_USER_FIELDS = tuple(f for f in User._meta.concrete_fields if f.name != "password")
# The token set's columns as the resolving queries read them (every concrete field).
_TOKEN_SET_FIELDS = tuple(TokenSet._meta.concrete_fields)
# The record's columns as the hot path inserts them (all but the primary key, which it returns).
_ACTIVITY_INSERT_FIELDS = tuple(f for f in Activity._meta.concrete_fields if not f.primary_key)


class _IdentityColumns(NamedTuple):
    """The identity columns of an account row, in ``_IDENTITY_SQL``'s order."""

    id: int | None
    provider: str | None
    uid: str | None
    is_default: bool | None
    account_name: str | None


_IDENTITY_SQL = "i.id, i.provider, i.uid, d.is_default, d.account_name"


@dataclass(frozen=True)
class ResolvedAccount:
    """The identity a token request resolved to, with its token set (None when nothing is stored)."""

    pk: int
    provider: str
    uid: str
    account_name: str
    token_set: TokenSet | None


@dataclass(frozen=True)
class KeyLookup:
    """The agent key a hash names (None: unknown), its user loaded, and the account of its user
    that a token request for one provider means (None: none linked)."""

    key: AgentKey | None
    account: ResolvedAccount | None


def find_agent_key(*, key_hash: str) -> AgentKey | None:
    """The key with ``key_hash`` (unique), its user loaded: one prepared query."""
    sql = prepared.statement(
        "hotpath.key", lambda: f"SELECT {_key_columns()} {_key_from()} WHERE k.key_hash = %s"
    )
    rows = prepared.fetch_all(sql, [key_hash])
    return _key_from_values(*_split(rows[0], len(_KEY_FIELDS), len(_USER_FIELDS))) if rows else None


def find_key_and_account(*, key_hash: str, provider: str, account_id: int | None) -> KeyLookup:
    """The token request's one query: the key, its user, and that user's ``provider`` accounts
    (only ``account_id`` when given) with their details and token sets."""
    by_account = account_id is not None
    sql = prepared.statement(
        f"hotpath.issue.{by_account}",
        lambda: (
            f"SELECT {_key_columns()}, {_account_columns()} {_key_from()} "
            + _accounts_join(user_column="k.user_id", by_account=by_account)
            + " WHERE k.key_hash = %s ORDER BY i.id"
        ),
    )
    params = [provider, *([account_id] if by_account else []), key_hash]
    widths = (len(_KEY_FIELDS), len(_USER_FIELDS), len(_IdentityColumns._fields), len(_TOKEN_SET_FIELDS))
    parts = [_split(row, *widths) for row in prepared.fetch_all(sql, params)]
    if not parts:
        return KeyLookup(key=None, account=None)
    key_values, user_values, _, _ = parts[0]
    return KeyLookup(
        key=_key_from_values(key_values, user_values),
        account=_account_from_parts([(identity, token) for _, _, identity, token in parts]),
    )


def find_account(*, user_id: int, provider: str, account_id: int | None) -> ResolvedAccount | None:
    """The account of ``user_id`` a token request for ``provider`` means (``account_id`` when
    given): one prepared query over identity, details and token set, where the ORM's
    select_related over three tables cost more than the round trip itself (bench/README.md)."""
    by_account = account_id is not None
    sql = prepared.statement(
        f"hotpath.account.{by_account}",
        lambda: (
            f"SELECT {_account_columns()} FROM {_table(User)} u "  # noqa: S608
            + _accounts_join(user_column="u.id", by_account=by_account)
            + " WHERE u.id = %s ORDER BY i.id"
        ),
    )
    params = [provider, *([account_id] if by_account else []), user_id]
    widths = (len(_IdentityColumns._fields), len(_TOKEN_SET_FIELDS))
    return _account_from_parts([_split(row, *widths) for row in prepared.fetch_all(sql, params)])


def insert_token_issued(entry: Activity) -> None:
    """Insert the record of a token handed to an agent (``activity.recording.new_record``): the
    one activity write that skips ``Activity.save()``, because every token request makes one.

    On PostgreSQL outside a transaction it commits without waiting for the WAL flush:
    ``set_config('synchronous_commit', 'off', true)`` inside the statement applies to its own
    implicit transaction only. The row is written and visible at once; only a crash of the
    database server itself within a fraction of a second (``wal_writer_delay``) could lose it.
    Inside a transaction (whose durability it must not change) it is a plain insert. No save
    signals are sent (Activity has no receivers)."""
    if entry.kind != VaultKind.TOKEN_ISSUED or entry.pk is not None:
        raise ValueError(
            "Only a new token-issued record takes the fast insert; use activity.recording.record."
        )
    db = connections[DEFAULT_DB_ALIAS]  # one thread-local lookup, not one per attribute
    values = [f.get_db_prep_save(f.pre_save(entry, True), db) for f in _ACTIVITY_INSERT_FIELDS]
    asynchronous = db.vendor == "postgresql" and not db.in_atomic_block
    (row,) = prepared.fetch_all(_insert_statement(Activity, asynchronous=asynchronous), values)
    entry.pk = row[0]
    entry._state.adding = False
    entry._state.db = db.alias


def _split(row: Sequence, *widths: int) -> list[tuple]:
    """``row`` cut into consecutive parts of ``widths`` columns (the SELECT lists above)."""
    parts, start = [], 0
    for width in widths:
        parts.append(tuple(row[start : start + width]))
        start += width
    return parts


def _key_from_values(key_values: tuple, user_values: tuple) -> AgentKey:
    key = prepared.model_from_row(AgentKey, _KEY_FIELDS, key_values)
    key.user = prepared.model_from_row(User, _USER_FIELDS, user_values)
    return key


def _account_from_parts(parts: list[tuple[tuple, tuple]]) -> ResolvedAccount | None:
    """The account a token request means among identity rows (ordered by identity id): the one
    marked default, else the oldest one."""
    found = [
        (_IdentityColumns._make(identity), token) for identity, token in parts if identity[0] is not None
    ]
    if not found:
        return None
    identity, token_values = next((p for p in found if p[0].is_default), found[0])
    return ResolvedAccount(
        pk=identity.id,
        provider=identity.provider,
        uid=identity.uid,
        account_name=identity.account_name or "",
        token_set=(
            prepared.model_from_row(TokenSet, _TOKEN_SET_FIELDS, token_values)
            if token_values[0] is not None
            else None
        ),
    )


def _columns(alias: str, fields: Sequence[Field]) -> str:
    """``alias."col", ...`` for ``fields``, quoted for this database."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in fields)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _key_columns() -> str:
    return f"{_columns('k', _KEY_FIELDS)}, {_columns('u', _USER_FIELDS)}"


def _key_from() -> str:
    """``FROM`` the agent keys (``k``) joined to their users (``u``)."""
    return f"FROM {_table(AgentKey)} k JOIN {_table(User)} u ON u.id = k.user_id"


def _account_columns() -> str:
    return f"{_IDENTITY_SQL}, {_columns('t', _TOKEN_SET_FIELDS)}"


def _accounts_join(*, user_column: str, by_account: bool) -> str:
    """``LEFT JOIN`` a user's identities of one provider (``%s``; then the id ``%s`` when
    ``by_account``), with their details and token sets. ``LEFT`` so a query that joins it to
    something else still answers with no identity."""
    return (
        f"LEFT JOIN {_table(UserSocialAuth)} i "
        f"ON i.user_id = {user_column} AND i.provider = %s" + (" AND i.id = %s" if by_account else "") + " "
        f"LEFT JOIN {_table(IdentityDetails)} d ON d.identity_id = i.id "
        f"LEFT JOIN {_table(TokenSet)} t ON t.identity_id = i.id"
    )


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
                f"INSERT INTO {_table(model)} ({names}) SELECT {placeholders} "  # noqa: S608
                f"FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit {returning}"
            )
        return f"INSERT INTO {_table(model)} ({names}) VALUES ({placeholders}) {returning}"  # noqa: S608

    return prepared.statement(
        f"hotpath.insert.{model._meta.label}.{'async' if asynchronous else 'sync'}", build
    )
