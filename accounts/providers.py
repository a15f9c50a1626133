"""The providers configured on this site, in the order the settings list them."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from social_core.backends.base import BaseAuth

_TITLES = {"google-oauth2": "Google", "github": "GitHub", "oidc": "OpenID Connect"}


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    #: Whether signing in with it gives OAuth tokens for the vault. A SAML connection is a way in
    #: and a linked identity only (its backend says ``holds_tokens = False``).
    holds_tokens: bool = True


def configured_providers() -> list[Provider]:
    """Every social-auth backend in AUTHENTICATION_BACKENDS, as (backend name, display title)."""
    return list(_configured_providers())


@functools.cache
def _configured_providers() -> tuple[Provider, ...]:
    # Read on every token request (names and titles); settings change only in tests, which
    # clear this through the setting_changed signal below.
    providers = []
    for path in settings.AUTHENTICATION_BACKENDS:
        backend_class = import_string(path)
        if isinstance(backend_class, type) and issubclass(backend_class, BaseAuth):
            title = getattr(settings, f"SOCIAL_AUTH_{backend_class.name.upper().replace('-', '_')}_TITLE", "")
            providers.append(
                Provider(
                    backend_class.name,
                    title
                    or _TITLES.get(backend_class.name, "")
                    or getattr(backend_class, "title", "")
                    or backend_class.name,
                    getattr(backend_class, "holds_tokens", True),
                )
            )
    return tuple(providers)


@receiver(setting_changed)
def _forget_providers(*, setting: str, **kwargs: object) -> None:
    if setting == "AUTHENTICATION_BACKENDS" or setting.startswith("SOCIAL_AUTH_"):
        _configured_providers.cache_clear()


def provider_title(name: str) -> str:
    for provider in _configured_providers():
        if provider.name == name:
            return provider.title
    return _TITLES.get(name, name)


def is_configured(name: str) -> bool:
    return any(provider.name == name for provider in _configured_providers())


def token_providers() -> list[Provider]:
    """The configured providers whose sign-in gives tokens: the only connections the vault knows."""
    return [provider for provider in _configured_providers() if provider.holds_tokens]


def holds_tokens(name: str) -> bool:
    """Whether ``name`` is a configured provider that gives tokens (the vault's connections)."""
    return any(provider.name == name and provider.holds_tokens for provider in _configured_providers())
