"""Where a browser may be sent back to: same-site relative paths only (no open redirect)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next_url(candidate: str | None, *, default: str | None = None) -> str:
    """Only same-site relative paths are followed; anything else becomes ``default``.

    ``default`` is the connections page unless the caller names another place.
    """
    if default is None:
        default = reverse("accounts:connections")
    if not candidate or not isinstance(candidate, str):
        return default
    if not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return default
    if not url_has_allowed_host_and_scheme(candidate, allowed_hosts=None, require_https=False):
        return default
    return candidate
