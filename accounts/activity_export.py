"""A person's activity as CSV or JSON: the export's one format, for the activity page's download links.

Cells a spreadsheet would run as a formula are defused (an agent's name is typed by a person).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from activity import kinds, listing

from .providers import provider_title


class _Echo:
    """A file-like object whose ``write`` returns the line, so ``csv.writer`` can feed a stream."""

    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run as a formula (an agent's name is typed by a person)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_lines(
    *, user_id: int, filters: listing.Filters, fmt: str, agent_names: dict[int, str]
) -> Iterator[str]:
    """One person's activity as CSV or JSON text, a line at a time (streamed: any length, little
    memory); their own rows only, as filtered."""
    records = (
        listing.export_record(entry, agent_names=agent_names, title=provider_title, label=kinds.label)
        for entry in listing.rows_for_export(user_id=user_id, filters=filters)
    )
    if fmt == "csv":
        writer = csv.writer(_Echo())
        yield writer.writerow(listing.EXPORT_FIELDS)
        for record in records:
            record["data"] = json.dumps(record["data"], sort_keys=True)
            yield writer.writerow([_cell(record[name]) for name in listing.EXPORT_FIELDS])
        return
    yield "["
    for number, record in enumerate(records):
        yield ("\n" if number == 0 else ",\n") + json.dumps(record, sort_keys=True)
    yield "\n]\n"
