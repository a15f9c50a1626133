"""A provider's token response, parsed once.

Every way tokens arrive (a sign-in's capture, a refresh, a narrowed refresh, tokens a refused flow
or a vanished identity leaves behind, plaintext imported from a stock install) reads the same
fields with the same rules here: which access tokens are plausible at all, how ``expires_in``
becomes an absolute expiry (or an assumed one), which ``scope`` counts as reported. Sentry's
``identity`` parses token responses in one place too; three copies here had drifted apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import scopes as scope_rules

#: Longest access token the vault stores or hands out (characters).
MAX_ACCESS_TOKEN_LENGTH = 8192
# RFC 6750 2.1 lets a bearer token be only visible ASCII; be as lenient as that, no more.
_PLAUSIBLE_TOKEN = re.compile(r"[\x21-\x7e]+")
#: The longest ``expires_in`` believed (ten years); anything past it, or not a whole number of
#: seconds, counts as missing (the assumed lifetime), never as an overflow or a token for ever.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600


def assumed_lifetime() -> int:
    """Seconds an access token is taken to live when its provider said nothing (``expires_in``)."""
    return max(60, int(getattr(settings, "VAULT_ASSUMED_TOKEN_LIFETIME", 3600)))


def is_plausible_access_token(value: object) -> bool:
    """Whether ``value`` could be an access token at all: a blank, non-string, oversized or
    non-ASCII value is a fault, never stored or handed out (issue 12.4)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ACCESS_TOKEN_LENGTH
        and _PLAUSIBLE_TOKEN.fullmatch(value) is not None
    )


def lifetime_seconds(value: Any) -> int | None:
    """An ``expires_in`` as whole seconds, or None when missing, negative, absurd or not a number."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number <= MAX_EXPIRES_IN else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class TokenResponse:
    """The fields of an RFC 6749 5.1 token response the vault uses. ``repr`` shows no token."""

    #: As sent when it is a non-empty string ("" otherwise); check ``plausible`` before storing it.
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    id_token: str | None = field(repr=False)
    #: As sent, cut to the column's 40 characters; "" when absent.
    token_type: str
    #: The provider's ``expires_in`` when usable, else None.
    expires_in: int | None
    received_at: datetime
    #: Absolute expiry: ``received_at`` plus ``expires_in``, or plus the assumed lifetime when the
    #: provider said nothing (``expiry_assumed``), so the token is renewed early instead of trusted
    #: for ever (issue 20.9).
    expires_at: datetime
    expiry_assumed: bool
    #: The ``scope`` the provider reported; empty when it reported none (RFC 6749 5.1: the grant
    #: is then what was asked).
    scopes: list[str]

    @property
    def plausible(self) -> bool:
        return is_plausible_access_token(self.access_token)


def parse_token_response(
    response: Mapping[str, Any], *, received_at: datetime | None = None
) -> TokenResponse:
    """Read ``response`` (a provider's JSON object, or social-auth's copy of one), received at
    ``received_at`` (now when not given)."""
    data = response if isinstance(response, Mapping) else {}
    received_at = received_at or timezone.now()
    expires_in = lifetime_seconds(data.get("expires_in"))
    lifetime = assumed_lifetime() if expires_in is None else expires_in
    return TokenResponse(
        access_token=_text(data.get("access_token")) or "",
        refresh_token=_text(data.get("refresh_token")),
        id_token=_text(data.get("id_token")),
        token_type=str(data.get("token_type") or "")[:40],
        expires_in=expires_in,
        received_at=received_at,
        expires_at=received_at + timedelta(seconds=lifetime),
        expiry_assumed=expires_in is None,
        scopes=scope_rules.parse_granted(data.get("scope")),
    )
