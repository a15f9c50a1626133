"""A person's signed-in browsers (the ``UserSession`` index): list them, end one, end all others.

Django's session stores cannot be searched by user, so sign-in adds a row to the index
(``remember_session``) and this module ends sessions through it: the store's own ``delete()``
(db, cache and cached_db alike, as ``accounts.merging`` does), then the row. Session keys are
bearer secrets: pages and forms only ever name a row by its id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.db.models import CharField, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string

from activity import recording

from .activity_kinds import AccountKind
from .models import UserSession

# How stale "last seen" may get: the middleware writes at most once per session in this time.
LAST_SEEN_INTERVAL = timedelta(minutes=5)
_USER_AGENT_LENGTH = UserSession._meta.get_field("user_agent").max_length

# First match wins: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (
    ("Edge", r"Edg(e|A|iOS)?/"),
    ("Opera", r"OPR/|Opera"),
    ("Samsung Internet", r"SamsungBrowser/"),
    ("Firefox", r"Firefox/|FxiOS/"),
    ("Chrome", r"Chrome/|CriOS/|HeadlessChrome/"),
    ("Safari", r"Safari/"),
)
_SYSTEMS = (
    ("iPhone", r"iPhone"),
    ("iPad", r"iPad"),
    ("Android", r"Android"),
    ("ChromeOS", r"CrOS"),
    ("Windows", r"Windows"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("Linux", r"Linux|X11"),
)


class SessionError(Exception):
    """A session that cannot be ended from here (the current one: that is "Sign out")."""


class SessionNotFound(SessionError):
    """No such session of this person (another person's id, or already signed out)."""


@dataclass(frozen=True)
class SessionRow:
    """One signed-in browser as the sessions page shows it."""

    id: int
    device: str
    ip_address: str | None
    signed_in_at: datetime
    last_seen_at: datetime | None
    is_current: bool


def device_summary(user_agent: str | None) -> str:
    """A summary like "Firefox on Windows" from a User-Agent: enough to recognise a browser by."""
    if not user_agent:
        return "Unknown browser"
    browser = next((name for name, pattern in _BROWSERS if re.search(pattern, user_agent)), "")
    system = next((name for name, pattern in _SYSTEMS if re.search(pattern, user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else "Unknown browser")


def remember_session(*, request: HttpRequest, user: AbstractBaseUser) -> None:
    """Index the session a sign-in just made (called from the ``user_logged_in`` receiver)."""
    session_key = request.session.session_key
    if not session_key:
        return
    UserSession.objects.update_or_create(
        session_key=session_key,
        defaults={
            "user": user,
            "user_agent": _user_agent(request),
            "ip_address": recording.client_ip(request),
            "last_seen_at": timezone.now(),
        },
    )


def touch_session(*, request: HttpRequest) -> int:
    """Record "last seen" (and the address now in use) for the request's session: one UPDATE.

    The caller decides how often (``accounts.session_middleware``); a session indexed before
    devices were kept gets its User-Agent here. Returns the rows updated (0 when not indexed).
    """
    return UserSession.objects.filter(
        session_key=request.session.session_key, user_id=request.user.pk
    ).update(
        last_seen_at=timezone.now(),
        ip_address=recording.client_ip(request),
        user_agent=Coalesce("user_agent", Value(_user_agent(request) or None, output_field=CharField())),
    )


def sessions_for(*, user: AbstractBaseUser, current_key: str | None) -> list[SessionRow]:
    """The person's signed-in browsers, this one first, then by last seen.

    Rows whose session has ended in the store (expired, or cleared by ``clearsessions``) are
    dropped from the index here, so the page never offers to end a browser that is already out.
    """
    rows: list[SessionRow] = []
    gone: list[int] = []
    for record in UserSession.objects.filter(user=user):
        if record.session_key != current_key and not _store(record.session_key).exists(record.session_key):
            gone.append(record.pk)
            continue
        rows.append(
            SessionRow(
                id=record.pk,
                device=device_summary(record.user_agent),
                ip_address=record.ip_address,
                signed_in_at=record.created_at,
                last_seen_at=record.last_seen_at,
                is_current=record.session_key == current_key,
            )
        )
    if gone:
        UserSession.objects.filter(pk__in=gone, user=user).delete()
    far_past = timezone.make_aware(datetime(1970, 1, 1))
    rows.sort(key=lambda row: (not row.is_current, -(row.last_seen_at or far_past).timestamp()))
    return rows


def end_session(
    *, user: AbstractBaseUser, session_id: int, current_key: str | None, request: HttpRequest | None = None
) -> SessionRow:
    """Sign one other browser out. Another person's session, or this one, is refused unchanged."""
    with transaction.atomic():
        record = UserSession.objects.select_for_update().filter(pk=session_id, user=user).first()
        if record is None:
            raise SessionNotFound("That browser is not signed in to your profile.")
        if record.session_key == current_key:
            raise SessionError("That is this browser: use “Sign out” to sign out here.")
        row = SessionRow(
            id=record.pk,
            device=device_summary(record.user_agent),
            ip_address=record.ip_address,
            signed_in_at=record.created_at,
            last_seen_at=record.last_seen_at,
            is_current=False,
        )
        _end(record.session_key)
        record.delete()
        recording.record(
            kind=AccountKind.SESSION_ENDED,
            user=user,
            request=request,
            message=f"Signed out {row.device}" + (f" ({row.ip_address})" if row.ip_address else ""),
            data={"session": session_id, "device": row.device},
        )
    return row


def end_other_sessions(
    *, user: AbstractBaseUser, current_key: str | None, request: HttpRequest | None = None
) -> int:
    """Sign out every browser of the person but this one; returns how many were signed out."""
    with transaction.atomic():
        others = list(
            UserSession.objects.select_for_update().filter(user=user).exclude(session_key=current_key)
        )
        for record in others:
            _end(record.session_key)
        UserSession.objects.filter(pk__in=[record.pk for record in others]).delete()
        recording.record(
            kind=AccountKind.OTHER_SESSIONS_ENDED,
            user=user,
            request=request,
            message=f"Signed out everywhere else ({len(others)} browser(s))",
            data={"count": len(others)},
        )
    return len(others)


def _store(session_key: str) -> SessionBase:
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    return engine(session_key=session_key)


def _end(session_key: str) -> None:
    _store(session_key).delete(session_key)


def _user_agent(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_LENGTH]
