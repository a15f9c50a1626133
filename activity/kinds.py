"""The registry of activity kinds: each app that records activity declares its own kinds.

The stored value is a plain string (``Activity.kind``); the registry only gives pages and the admin
their labels. An app registers its ``TextChoices`` in ``AppConfig.ready()``, so the list is complete
before any page, form or check reads it.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import models

_labels: dict[str, str] = {}


def register(kinds: type[models.TextChoices]) -> None:
    """Add an app's kinds. A value already registered with another label is a mistake: two apps
    would show one stored value differently."""
    for value, label in kinds.choices:
        known = _labels.setdefault(value, label)
        if known != label:
            raise ImproperlyConfigured(f"Activity kind {value!r} is registered twice ({known!r}, {label!r}).")


def choices() -> list[tuple[str, str]]:
    """Every registered kind, for ``Activity.kind``'s choices (evaluated when read, not at import)."""
    return list(_labels.items())


def label(kind: str) -> str:
    """The label of a stored kind, or the value itself for a kind no app declares any more."""
    return _labels.get(kind, kind)
