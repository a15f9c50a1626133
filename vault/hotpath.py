"""Every hand-written SQL statement of the site: the agent API's hot path, and nothing else.

The token request runs on nearly every agent call, so its reads are three fixed statements and its
one write a fixed insert, prepared on PostgreSQL (``vault.prepared``), where the ORM's per-call
compilation would cost more than the database round trip (bench/README.md). They live here, and
only here, with their row types: callers get a ``ResolvedAccount``, a ``KeyLookup`` or an
``AgentKey``, never a row to take apart by position (tests/test_layout_sql.py holds that line).

Everything else in the site, the other activity records included, goes through the ORM.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Field, Model
from social_django.models import UserSocialAuth

from accounts.models import IdentityDetails, User
from activity.models import Activity

from . import prepared
from .activity_kinds import VaultKind
from .models import AgentKey, StagedRecordsMark, TokenSet

_KEY_FIELDS = tuple(AgentKey._meta.concrete_fields)
# Everything but the password hash, which no agent request needs (it stays deferred).
_USER_FIELDS = tuple(f for f in User._meta.concrete_fields if f.name != "password")
# The token request reads less: what deciding on the key and recording the hand-out look at (the
# rest stays deferred; the long way, a refresh or an error to explain, loads what it touches).
_ISSUE_KEY_FIELDS = tuple(f for f in _KEY_FIELDS if f.name not in {"key_hash", "hint", "created_at"})
_ISSUE_USER_FIELDS = tuple(f for f in _USER_FIELDS if f.name in {"id", "is_active", "merged_into"})
# The token set's columns the resolving queries read: what handing out a stored token looks at.
# The bookkeeping columns (leases, revocation, error history, row times) stay deferred: a path
# that needs one (a refresh, a revocation) reads its row again under a lock anyway.
_TOKEN_SET_UNREAD = {
    "scopes_reported",
    "last_error_at",
    "revoke_attempts",
    "detached_at",
    "lease_id",
    "lease_expires_at",
    "created_at",
    "updated_at",
}
_TOKEN_SET_FIELDS = tuple(f for f in TokenSet._meta.concrete_fields if f.name not in _TOKEN_SET_UNREAD)
# The record's columns as the hot path inserts them (all but the primary key, which it returns).
_ACTIVITY_INSERT_FIELDS = tuple(f for f in Activity._meta.concrete_fields if not f.primary_key)
#: A token-issued record staged in Redis: its columns by name, in the insert's order.
StagedTokenIssued = namedtuple("StagedTokenIssued", [f.attname for f in _ACTIVITY_INSERT_FIELDS])
_DATA_COLUMN = StagedTokenIssued._fields.index("data")
# One encoder: json.dumps with arguments builds a new one on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_USER_COLUMN = StagedTokenIssued._fields.index("user_id")
_CREATED_COLUMN = StagedTokenIssued._fields.index("created_at")


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
    if not rows:
        return None
    return _key_from_values(*_split(rows[0], len(_KEY_FIELDS), len(_USER_FIELDS)), full=True)


def find_key_and_account(*, key_hash: str, provider: str, account_id: int | None) -> KeyLookup:
    """The token request's one query: the key, its user, and that user's ``provider`` accounts
    (only ``account_id`` when given) with their details and token sets."""
    by_account = account_id is not None
    sql = prepared.statement(
        f"hotpath.issue.{by_account}",
        lambda: (
            f"SELECT {_key_columns(full=False)}, {_account_columns()} {_key_from()} "
            + _accounts_join(user_column="k.user_id", by_account=by_account)
            + " WHERE k.key_hash = %s ORDER BY i.id"
        ),
    )
    params = [provider, *([account_id] if by_account else []), key_hash]
    widths = (
        len(_ISSUE_KEY_FIELDS),
        len(_ISSUE_USER_FIELDS),
        len(_IdentityColumns._fields),
        len(_TOKEN_SET_FIELDS),
    )
    parts = [_split(row, *widths) for row in prepared.fetch_all(sql, params)]
    if not parts:
        return KeyLookup(key=None, account=None)
    key_values, user_values, _, _ = parts[0]
    return KeyLookup(
        key=_key_from_values(key_values, user_values, full=False),
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


def staged_token_issued(values: dict[str, Any]) -> str:
    """A new token-issued record's values (``activity.recording.record_values``) as they are staged
    in Redis (``vault.staged_records``): the columns in the insert's order (``StagedTokenIssued``)
    as a JSON array, the time in ISO 8601."""
    if values["kind"] != VaultKind.TOKEN_ISSUED:
        raise ValueError("Only a token-issued record is staged.")
    row = [values[name] for name in StagedTokenIssued._fields]
    row[_CREATED_COLUMN] = row[_CREATED_COLUMN].isoformat()
    return _COMPACT_JSON.encode(row)


def move_staged_token_issued(*, records: str, after: str, upto: str) -> int | None:
    """Insert staged records (``records``: a JSON array of ``staged_token_issued`` rows, as Redis
    joins them) and move the mark from ``after`` to ``upto`` in one transaction; the number
    inserted, or None when the mark was not at ``after`` (another drainer moved these records
    first: nothing is inserted).

    On PostgreSQL it is one statement: the database takes the array apart itself, so the site's
    process spends no Python per record (a ``bulk_create`` of the same rows held the process, and
    the requests it serves, twenty times longer; bench/README.md). The array is read as ``jsonb``,
    parsed once: as ``json`` each column's ``->>`` parsed its element's text again (26 against 14
    us of database CPU per record). It commits synchronously: the entries leave Redis only once
    the rows are on disk. A record whose person was deleted after the hand-out goes as their other
    records went (``on_delete=CASCADE``).
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        (row,) = prepared.fetch_all(_move_statement(), [upto, StagedRecordsMark.ONLY, after, records])
        moved, inserted = row
        return inserted if moved else None
    with transaction.atomic():
        if not StagedRecordsMark.objects.filter(pk=StagedRecordsMark.ONLY, last_entry_id=after).update(
            last_entry_id=upto
        ):
            return None
        rows = [StagedTokenIssued._make(row) for row in json.loads(records)]
        live = set(User.objects.filter(pk__in={r.user_id for r in rows}).values_list("pk", flat=True))
        values = [_row_for_insert(row, db) for row in rows if row.user_id in live]
        with db.cursor() as cursor:
            cursor.executemany(_insert_statement(Activity, asynchronous=False, returning=False), values)
    return len(values)


def _row_for_insert(row: StagedTokenIssued, db) -> list:
    """A staged row's values as a plain insert takes them (JSON text, the database's datetimes)."""
    values = list(row)
    values[_DATA_COLUMN] = json.dumps(row.data)
    values[_CREATED_COLUMN] = db.ops.adapt_datetimefield_value(datetime.fromisoformat(row.created_at))
    return values


def _move_statement() -> str:
    """Compare-and-set the mark, and insert the JSON array's records only if it moved."""

    def build() -> str:
        quote = connection.ops.quote_name
        names = ", ".join(quote(f.column) for f in _ACTIVITY_INSERT_FIELDS)
        columns = ", ".join(
            f"(e->{i})::jsonb"
            if f.get_internal_type() == "JSONField"
            else f"(e->>{i})::{f.db_type(connection)}"
            for i, f in enumerate(_ACTIVITY_INSERT_FIELDS)
        )
        mark = quote(StagedRecordsMark._meta.get_field("last_entry_id").column)
        return (
            f"WITH moved AS (UPDATE {_table(StagedRecordsMark)} SET {mark} = %s "  # noqa: S608
            f"WHERE {quote(StagedRecordsMark._meta.pk.column)} = %s AND {mark} = %s RETURNING 1), "
            f"inserted AS (INSERT INTO {_table(Activity)} ({names}) SELECT {columns} "
            f"FROM jsonb_array_elements(%s::jsonb) AS e "
            f"JOIN {_table(User)} u ON u.id = (e->>{_USER_COLUMN})::bigint "
            f"WHERE EXISTS (SELECT 1 FROM moved) RETURNING 1) "
            f"SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM inserted)"
        )

    return prepared.statement("hotpath.move-staged", build)


def _split(row: Sequence, *widths: int) -> list[tuple]:
    """``row`` cut into consecutive parts of ``widths`` columns (the SELECT lists above)."""
    parts, start = [], 0
    for width in widths:
        parts.append(tuple(row[start : start + width]))
        start += width
    return parts


def _key_from_values(key_values: tuple, user_values: tuple, *, full: bool) -> AgentKey:
    key = prepared.model_from_row(AgentKey, _KEY_FIELDS if full else _ISSUE_KEY_FIELDS, key_values)
    key.user = prepared.model_from_row(User, _USER_FIELDS if full else _ISSUE_USER_FIELDS, user_values)
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


def _key_columns(*, full: bool = True) -> str:
    if full:
        return f"{_columns('k', _KEY_FIELDS)}, {_columns('u', _USER_FIELDS)}"
    return f"{_columns('k', _ISSUE_KEY_FIELDS)}, {_columns('u', _ISSUE_USER_FIELDS)}"


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


def _insert_statement(model: type[Model], *, asynchronous: bool, returning: bool = True) -> str:
    def build() -> str:
        quote = connection.ops.quote_name
        names = ", ".join(quote(f.column) for f in _insert_fields(model))
        placeholders = ", ".join(["%s"] * len(_insert_fields(model)))
        returned = f" RETURNING {quote(model._meta.pk.column)}" if returning else ""
        if asynchronous:
            return (
                f"INSERT INTO {_table(model)} ({names}) SELECT {placeholders} "  # noqa: S608
                f"FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit{returned}"
            )
        return f"INSERT INTO {_table(model)} ({names}) VALUES ({placeholders}){returned}"  # noqa: S608

    mode = f"{'async' if asynchronous else 'sync'}{'' if returning else '.no-returning'}"
    return prepared.statement(f"hotpath.insert.{model._meta.label}.{mode}", build)
