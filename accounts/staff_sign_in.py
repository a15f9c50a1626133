"""Throttling for the staff password sign-in (``/staff/login/`` and ``/admin/login/``).

A small cache counter per client address rather than django-axes: axes wants its backend first in
``AUTHENTICATION_BACKENDS`` and a request on every ``authenticate()`` call, which would put it in the
way of social-auth's sign-ins too; the password forms are the only place guessing is possible. The
counter lives in the cache (Redis in production), so every worker sees the same count.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from activity import recording

from .activity_kinds import AccountKind

REFUSED_MESSAGE = "Too many failed sign-ins from your address. Wait %(minutes)d minutes, then try again."


def _limit() -> tuple[int, int]:
    """(failures allowed, window in seconds): ``STAFF_SIGN_IN_LIMIT`` in settings."""
    failures, seconds = getattr(settings, "STAFF_SIGN_IN_LIMIT", (5, 15 * 60))
    return int(failures), int(seconds)


def _key(ip_address: str | None) -> str:
    return f"staff-sign-in-failures:{ip_address or 'unknown'}"


def is_locked_out(*, ip_address: str | None) -> bool:
    failures, _ = _limit()
    return int(cache.get(_key(ip_address), 0)) >= failures


def note_failure(*, ip_address: str | None) -> None:
    """Count one failed password from ``ip_address``; the window starts at the first failure."""
    _, seconds = _limit()
    key = _key(ip_address)
    cache.add(key, 0, timeout=seconds)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr: this failure starts a new window
        cache.add(key, 1, timeout=seconds)


def refuse(*, request: HttpRequest | None, username: str) -> ValidationError:
    """Record the refused attempt (the password is never looked at) and say why it was refused."""
    _, seconds = _limit()
    recording.record(
        kind=AccountKind.SIGN_IN_THROTTLED,
        user=None,
        request=request,
        message="Staff password sign-in refused: too many failed attempts from this address.",
        data={"username": username[:150]},
    )
    return ValidationError(REFUSED_MESSAGE, code="throttled", params={"minutes": max(1, round(seconds / 60))})


class ThrottledMixin:
    """Refuses before the password is checked once the address is locked out; counts failures."""

    request: HttpRequest | None

    def clean(self) -> dict[str, Any]:
        ip_address = recording.client_ip(self.request)
        if is_locked_out(ip_address=ip_address):
            raise refuse(request=self.request, username=str(self.data.get("username", "")))
        try:
            return super().clean()
        except ValidationError:
            note_failure(ip_address=ip_address)
            raise


class StaffAuthenticationForm(ThrottledMixin, AuthenticationForm):
    """The ``/staff/login/`` form."""


class StaffAdminAuthenticationForm(ThrottledMixin, AdminAuthenticationForm):
    """The admin's login form (``admin.site.login_form``)."""
