"""URL converters: an id in a URL is checked by its format before any query sees it.

A value that does not fit never reaches the database (a NUL, a 30-digit number or a stray
character would otherwise be a database error, a 500 on PostgreSQL): the URL simply does not
match, so pages answer their 404 and the agent API its JSON ``not_found``.
"""

from __future__ import annotations

import re

from django.urls import register_converter
from django.urls.converters import get_converters

# The largest value of a BigAutoField (PostgreSQL bigint, SQLite INTEGER).
MAX_DATABASE_ID = 2**63 - 1


def is_database_id(value: object) -> bool:
    """True for a row id as our URLs and forms carry it: a positive whole number that fits bigint."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 < value <= MAX_DATABASE_ID
    return (
        isinstance(value, str)
        and re.fullmatch(r"[1-9][0-9]{0,18}", value) is not None
        and (int(value) <= MAX_DATABASE_ID)
    )


class DatabaseIdConverter:
    """``<dbid:name>``: a row id (1 to 2**63-1, no sign, no leading zero), passed on as an int."""

    regex = "[1-9][0-9]{0,18}"

    def to_python(self, value: str) -> int:
        if not is_database_id(value):
            raise ValueError(value)  # the URL does not match
        return int(value)

    def to_url(self, value: int) -> str:
        return str(int(value))


# Registered once, on import, for every urls module that uses ``<dbid:...>`` (accounts, vault).
if "dbid" not in get_converters():
    register_converter(DatabaseIdConverter, "dbid")
