"""A small Python API over the sandbox providers' state, for tests and for people debugging by hand.

Everything lives in the database (``ProviderState``), so a mode set from a test, the sandbox index
page or a shell reaches every server process, and counters add up across processes.

Providers are named ``"google"`` or ``"github"``; the social-auth backend name ``"google-oauth2"``
is accepted too.
"""

from __future__ import annotations

from django.db.models import F

from . import oauth
from .models import ProviderState
from .providers import PROVIDERS, normalize_provider

#: ``normal``; ``invalid_grant``: refresh grants answer the provider's invalid-grant error;
#: ``server_error``: the token endpoint answers 503 JSON; ``slow``: it sleeps
#: ``settings.SANDBOX_SLOW_SECONDS`` (default 6 s) before answering; ``rate_limited``: 429 with
#: ``Retry-After: 30``.
FAILURE_MODES = ("normal", "invalid_grant", "server_error", "slow", "rate_limited")


def _row(provider: str) -> ProviderState:
    row, _created = ProviderState.objects.get_or_create(provider=normalize_provider(provider))
    return row


def get_failure_mode(provider: str) -> str:
    """The provider's current failure mode (``"normal"`` unless someone set another)."""
    mode = (
        ProviderState.objects.filter(provider=normalize_provider(provider))
        .values_list("failure_mode", flat=True)
        .first()
    )
    return mode or "normal"


def set_failure_mode(provider: str, mode: str) -> None:
    """Make the provider's token endpoint misbehave (or behave again, with ``"normal"``)."""
    if mode not in FAILURE_MODES:
        raise ValueError(f"Unknown failure mode {mode!r}; use one of {', '.join(FAILURE_MODES)}.")
    ProviderState.objects.update_or_create(
        provider=normalize_provider(provider), defaults={"failure_mode": mode}
    )


def refresh_count(provider: str, *, successful: bool = False) -> int:
    """How many refresh-grant requests the provider's token endpoint received.

    Every request counts, whatever it was answered (so a test can assert "exactly one refresh
    reached the provider"); with ``successful=True``, only those that were answered with tokens.
    """
    row = ProviderState.objects.filter(provider=normalize_provider(provider)).first()
    if row is None:
        return 0
    return row.refresh_successes if successful else row.refresh_requests


def record_refresh(provider: str, *, successful: bool) -> None:
    """Count one refresh-grant request (the token endpoints call this; atomic across processes).

    One ``UPDATE`` per call; the row is made only when it is missing: the token endpoint counts
    twice per refresh, and ``vault_refresh``'s benchmark sends it 100,000 of them."""
    name = normalize_provider(provider)
    field = "refresh_successes" if successful else "refresh_requests"
    if not ProviderState.objects.filter(pk=name).update(**{field: F(field) + 1}):
        _row(name)
        ProviderState.objects.filter(pk=name).update(**{field: F(field) + 1})


def reset(provider: str | None = None) -> None:
    """Back to normal with zeroed counters, for one provider or both."""
    providers = [normalize_provider(provider)] if provider else list(PROVIDERS)
    for name in providers:
        ProviderState.objects.update_or_create(
            provider=name, defaults={"failure_mode": "normal", "refresh_requests": 0, "refresh_successes": 0}
        )


def token_is_active(provider: str, token: str) -> bool:
    """Introspection: would the provider still accept this access or refresh token?"""
    return (
        oauth.active_access_token(provider, token) is not None
        or oauth.active_refresh_token(provider, token) is not None
    )
