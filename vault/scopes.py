"""Scope strings: parsing what a provider says it granted, and whether a grant covers a request.

Providers answer differently: Google and OIDC space-separate the ``scope`` of a token response,
GitHub comma-separates it; Google reports ``email``/``profile`` under their long URL names; a
GitHub scope such as ``repo`` includes narrower ones (``public_repo``...). ``missing_scopes`` knows
these so an agent asking for ``email`` is not sent to re-consent for what Google already granted.

What a scope *name* is, and how many a request may carry, is ``accounts.scopes`` (the one grammar
for pages, API and keys); this module is about what providers grant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from accounts.scopes import split_scopes

_GOOGLE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}

# GitHub OAuth scopes that include narrower ones (GitHub's documented scope hierarchy).
_GITHUB_INCLUDES: dict[str, set[str]] = {
    "repo": {"repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events"},
    "user": {"read:user", "user:email", "user:follow"},
    "admin:org": {"write:org", "read:org", "manage_runners:org"},
    "write:org": {"read:org"},
    "admin:repo_hook": {"write:repo_hook", "read:repo_hook"},
    "write:repo_hook": {"read:repo_hook"},
    "admin:public_key": {"write:public_key", "read:public_key"},
    "write:public_key": {"read:public_key"},
    "admin:gpg_key": {"write:gpg_key", "read:gpg_key"},
    "write:gpg_key": {"read:gpg_key"},
    "write:packages": {"read:packages"},
    "project": {"read:project"},
    "write:discussion": {"read:discussion"},
    "admin:enterprise": {"manage_runners:enterprise", "manage_billing:enterprise", "read:enterprise"},
}


def parse_granted(value: object) -> list[str]:
    """Scopes from a token response's ``scope`` (string, either separator, or a list), in order."""
    if not isinstance(value, list | tuple | str):
        return [] if value is None else split_scopes(str(value))
    return split_scopes(value)


def normalise_requested(scopes: Iterable[str] | str | None) -> list[str]:
    """A caller's scopes as a list, read like a ``scope`` parameter (the one grammar's reading)."""
    return split_scopes(scopes)


def _covered(provider: str, granted: set[str]) -> set[str]:
    covered = set(granted)
    if provider.startswith("google"):
        for short, long in _GOOGLE_ALIASES.items():
            if short in granted or long in granted:
                covered.update({short, long})
    if provider.startswith("github"):
        for scope in granted:
            covered.update(_GITHUB_INCLUDES.get(scope, set()))
    return covered


def missing_scopes(provider: str, *, granted: Iterable[str], requested: Iterable[str]) -> list[str]:
    """The requested scopes the grant does not cover, in the order they were asked for."""
    covered = _covered(provider, set(granted))
    return [scope for scope in requested if scope not in covered]


@dataclass(frozen=True)
class ScopeLimit:
    """What the holder of a token (an agent key; later an OAuth client) may receive.

    ``scopes`` empty: anything the account granted. Otherwise a token must not carry more than
    these, unless ``whole_grant`` says the person explicitly allowed the holder the whole grant.
    """

    scopes: tuple[str, ...] = ()
    whole_grant: bool = False


#: Providers whose refresh grant takes a ``scope`` naming a subset of the grant and answers a token
#: with only those (Google's token endpoint does). GitHub cannot narrow a token, and OpenID Connect
#: providers are not relied on to (RFC 6749 6 allows it, many ignore it).
DOWNSCOPING_PROVIDERS = frozenset({"google-oauth2"})


def can_downscope(provider: str) -> bool:
    return provider in DOWNSCOPING_PROVIDERS


def beyond(provider: str, *, granted: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The granted scopes that ``allowed`` does not cover (what a holder must not receive)."""
    return missing_scopes(provider, granted=allowed, requested=granted)


def narrowed(provider: str, *, granted: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """The granted scopes, in grant order and spelled as granted, that ``wanted`` covers."""
    covered = _covered(provider, set(wanted))
    return [scope for scope in granted if scope in covered]
