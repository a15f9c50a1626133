"""Reading one person's activity at any size: filters, keyset pages, and token hand-outs grouped.

A page costs the same at any depth: it reads at most ``SCAN_LIMIT`` rows after a cursor of
``(created_at, id)`` through the ``(user, -created_at, -id)`` index, never an ``OFFSET`` and never
a ``COUNT`` over the table. Hand-outs (one row per token an agent got, the table's bulk) fold into
one item per agent key, provider and hour, so the events a person did themself stay on page one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import Activity

#: The kind the vault records for every token it hands out (``vault.activity_kinds``): this app
#: imports nothing of the vault's, so it names the stored value.
HANDOUT_KIND = "token_issued"
#: Items (events or groups) on one page.
PAGE_ITEMS = 50
#: Rows read for one page at most: what bounds a page's cost when an agent fetches thousands of
#: tokens an hour (the rest of such an hour continues on the next page).
SCAN_LIMIT = 1000
#: Hand-outs listed inside an expanded group; the group links to a filtered view of all of them.
GROUP_SHOWN = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    """What the person narrowed the list to (empty: everything)."""

    kind: str = ""
    provider: str = ""
    agent_key_id: int | None = None

    def query(self) -> dict[str, str]:
        """The filters as GET parameters, for links that keep them."""
        found = {"kind": self.kind, "provider": self.provider, "agent": self.agent_key_id or ""}
        return {name: str(value) for name, value in found.items() if value}


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the ``(created_at, id)`` of a row. Written as an opaque short string."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, entry: Activity) -> Cursor:
        return cls(entry.created_at, entry.pk)

    def text(self) -> str:
        micros = (self.created_at - _EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(f"{micros}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """The cursor a link carried; ``ValueError`` for anything a page of ours did not write."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            micros, _, row_id = raw.partition(".")
            cursor = cls(_EPOCH + timedelta(microseconds=int(micros)), int(row_id))
        except (ValueError, OverflowError, UnicodeDecodeError) as error:
            raise ValueError("not a page position") from error
        if cursor.id < 1:
            raise ValueError("not a page position")
        return cursor


@dataclass
class Group:
    """Hand-outs of one agent key for one provider within one hour (of the site's time zone)."""

    agent_key_id: int | None
    provider: str
    hour: datetime
    agent_name: str
    entries: list[Activity] = field(default_factory=list)
    is_group: bool = True
    #: More hand-outs of this agent, provider and hour are on the neighbouring page (a full page
    #: or the read limit cut the hour).
    continues: bool = False

    @property
    def key(self) -> tuple[int | None, str, datetime]:
        return (self.agent_key_id, self.provider, self.hour)

    @property
    def count(self) -> int:
        return len(self.entries)

    @property
    def newest(self) -> Activity:
        return self.entries[0]

    @property
    def hour_end(self) -> datetime:
        return self.hour + timedelta(hours=1)

    @property
    def shown(self) -> list[Activity]:
        return self.entries[:GROUP_SHOWN]

    def all_link_query(self) -> dict[str, str]:
        """GET parameters of the flat, filtered list that starts at this group's newest hand-out."""
        start = Cursor(self.newest.created_at, self.newest.pk + 1)
        query = Filters(kind=HANDOUT_KIND, provider=self.provider, agent_key_id=self.agent_key_id).query()
        return {**query, "flat": "1", "before": start.text()}


@dataclass
class Event:
    """One row shown as itself."""

    entry: Activity
    agent_name: str = ""
    is_group: bool = False


@dataclass(frozen=True)
class Page:
    items: list[Group | Event]
    older: Cursor | None
    newer: Cursor | None


def filtered(*, user_id: int, filters: Filters) -> QuerySet[Activity]:
    """The person's own rows, narrowed by ``filters``; nobody else's row can enter."""
    rows = Activity.objects.filter(user_id=user_id)
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    if filters.agent_key_id is not None:
        rows = rows.filter(agent_key_id=filters.agent_key_id)
    return rows


def older_than(rows: QuerySet[Activity], cursor: Cursor) -> QuerySet[Activity]:
    """``rows`` after ``cursor`` in newest-first order (for the admin list too)."""
    # ``created_at <= t`` gives the index its range; the exclude drops the cursor row and the rows
    # of the same instant that came after it (ids grow with time).
    return rows.filter(created_at__lte=cursor.created_at).exclude(
        created_at=cursor.created_at, id__gte=cursor.id
    )


def newer_than(rows: QuerySet[Activity], cursor: Cursor) -> QuerySet[Activity]:
    """``rows`` before ``cursor`` in newest-first order: what a "Newer" link shows."""
    return rows.filter(created_at__gte=cursor.created_at).exclude(
        created_at=cursor.created_at, id__lte=cursor.id
    )


def page_of(
    *,
    user_id: int,
    filters: Filters,
    agent_names: Mapping[int, str],
    before: Cursor | None = None,
    after: Cursor | None = None,
    grouped: bool = True,
    size: int = PAGE_ITEMS,
    scan: int = SCAN_LIMIT,
) -> Page:
    """One page of the person's activity, newest first: older than ``before``, or (for "Newer"
    links) newer than ``after``; the first page when neither is given. One query."""
    rows = filtered(user_id=user_id, filters=filters).select_related("actor")
    if after is not None:
        rows = newer_than(rows, after).order_by("created_at", "id")
    else:
        rows = rows.order_by("-created_at", "-id")
        if before is not None:
            rows = older_than(rows, before)
    read = list(rows[: scan + 1])
    items, used = _fold(read[:scan], agent_names=agent_names, grouped=grouped, size=size)
    more = used < len(read)
    groups = {item.key: item for item in items if isinstance(item, Group)}
    for entry in read[used:]:
        if entry.kind == HANDOUT_KIND and _group_key(entry) in groups:
            groups[_group_key(entry)].continues = True
    if after is None:
        older = Cursor.of(read[used - 1]) if more else None
        # A page reached by "Older" has newer rows above it: the ones the person came from.
        newer = Cursor.of(read[0]) if before is not None and read else None
        return Page(items=items, older=older, newer=newer)
    # Read oldest first: turn the page round, and each group's hand-outs with it.
    for item in items:
        if isinstance(item, Group):
            item.entries.reverse()
    items.reverse()
    return Page(
        items=items,
        # Nothing newer (rows gone since): "Older" starts again at the row the link came from.
        older=Cursor.of(read[0]) if read else Cursor(after.created_at, after.id + 1),
        newer=Cursor.of(read[used - 1]) if more else None,
    )


def _fold(
    rows: list[Activity], *, agent_names: Mapping[int, str], grouped: bool, size: int
) -> tuple[list[Group | Event], int]:
    """Up to ``size`` items from ``rows`` (in reading order) and how many rows they used: the rows
    used are a prefix, so the next page starts right after the last one."""
    items: list[Group | Event] = []
    groups: dict[tuple[int | None, str, datetime], Group] = {}
    used = 0
    for entry in rows:
        name = agent_names.get(entry.agent_key_id, "") if entry.agent_key_id else ""
        if grouped and entry.kind == HANDOUT_KIND:
            key = _group_key(entry)
            if key not in groups:
                if len(items) == size:
                    break
                groups[key] = Group(entry.agent_key_id, entry.provider, key[2], name or _unnamed(entry))
                items.append(groups[key])
            groups[key].entries.append(entry)
        else:
            if len(items) == size:
                break
            items.append(Event(entry, agent_name=name))
        used += 1
    return items, used


def _group_key(entry: Activity) -> tuple[int | None, str, datetime]:
    hour = timezone.localtime(entry.created_at).replace(minute=0, second=0, microsecond=0)
    return (entry.agent_key_id, entry.provider, hour)


def _unnamed(entry: Activity) -> str:
    """An agent without a current name: the name the record kept, else a plain description."""
    kept = entry.data.get("agent") if isinstance(entry.data, dict) else None
    if kept:
        return str(kept)
    return "An agent" if entry.agent_key_id else "An application"


def rows_for_export(*, user_id: int, filters: Filters, batch: int = 1000) -> Iterator[Activity]:
    """Every row of the person's (filtered) activity, newest first, read in keyset batches: memory
    and each query stay the same size however long the history is."""
    rows = filtered(user_id=user_id, filters=filters).select_related("actor").order_by("-created_at", "-id")
    cursor: Cursor | None = None
    while True:
        chunk = list((rows if cursor is None else older_than(rows, cursor))[:batch])
        yield from chunk
        if len(chunk) < batch:
            return
        cursor = Cursor.of(chunk[-1])


EXPORT_FIELDS = (
    "id",
    "time",
    "kind",
    "what",
    "provider",
    "provider_title",
    "agent_key_id",
    "agent",
    "account_uid",
    "message",
    "by_staff",
    "ip_address",
    "data",
)


def export_record(
    entry: Activity,
    *,
    agent_names: Mapping[int, str],
    title: Callable[[str], str],
    label: Callable[[str], str],
) -> dict[str, object]:
    """One row as the export writes it: the record's own facts (the site stores no secret in them)."""
    return {
        "id": entry.pk,
        "time": entry.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "kind": entry.kind,
        "what": label(entry.kind),
        "provider": entry.provider,
        "provider_title": title(entry.provider) if entry.provider else "",
        "agent_key_id": entry.agent_key_id,
        "agent": agent_names.get(entry.agent_key_id, "") if entry.agent_key_id else "",
        "account_uid": entry.uid,
        "message": entry.message,
        "by_staff": str(entry.actor) if entry.actor_id else "",
        "ip_address": entry.ip_address or "",
        "data": entry.data,
    }
