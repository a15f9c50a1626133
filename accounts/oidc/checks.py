"""Checks of the OpenID Connect providers: ``manage.py check`` and the server's start-up.

Registered when the app is ready (``accounts.apps``). ``check --tag oidc`` fetches every configured
provider's discovery now and reports what :func:`accounts.oidc.discovery.discovery_problems` finds,
plus two providers sharing one client (``oidc.E010``); ``check --tag oidc_identities`` reads the
database for identities bound to another issuer (``oidc.E020``). :func:`validate_at_startup` runs
the same at WSGI/ASGI start-up: a misconfiguration stops the server, an unreachable provider is
only logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from social_django.utils import load_strategy

from accounts.issuers import binding_problems

from .backend import OpenIdConnectAuth
from .config import insecure_issuer_allowed, setting_prefix
from .discovery import discovery_problems

logger = logging.getLogger(__name__)


def configured_backends() -> list[type[OpenIdConnectAuth]]:
    """The OIDC backend classes in AUTHENTICATION_BACKENDS."""
    found = []
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, OpenIdConnectAuth):
            found.append(cls)
    return found


@dataclass(frozen=True)
class Problem:
    provider: str
    id: str
    message: str
    unreachable: bool = False

    @property
    def is_error(self) -> bool:
        return ".E" in self.id


def provider_problems(backend_cls: type[OpenIdConnectAuth]) -> list[Problem]:
    """Check ``backend_cls``'s settings, fetch its discovery document now, and say what is wrong.

    ``OIDC_CHECK_DISCOVERY=off`` skips the fetch (for example to run ``migrate`` while a provider is
    down; ``--skip-checks`` does the same for one command).
    """
    backend = backend_cls(load_strategy())
    problems = _settings_problems(backend)
    if problems or not getattr(settings, "OIDC_CHECK_DISCOVERY", True):
        return problems
    document = _fetch_discovery(backend)
    if isinstance(document, Problem):
        return [document]
    errors, warnings = discovery_problems(
        document,
        configured_issuer=backend.configured_issuer(),
        allow_insecure=insecure_issuer_allowed(),
        offline_access=bool(backend.setting("OFFLINE_ACCESS", True)),
        endpoint_hosts=backend.endpoint_hosts(),
        hosts_setting=backend.endpoint_hosts_setting(),
    )
    return [Problem(backend.name, f"oidc.{code}", message) for code, message in [*errors, *warnings]]


def _settings_problems(backend: OpenIdConnectAuth) -> list[Problem]:
    """What is wrong before anything is fetched: missing settings, an http:// issuer."""
    name = backend.name
    prefix = f"SOCIAL_AUTH_{setting_prefix(name)}_"
    missing = [
        Problem(name, "oidc.E001", f"{prefix}{setting_name} is not set")
        for setting_name in ("OIDC_ENDPOINT", "KEY", "SECRET")
        if not backend.setting(setting_name)
    ]
    if missing:
        return missing
    issuer = backend.configured_issuer()
    if urlsplit(issuer).scheme != "https" and not insecure_issuer_allowed():
        return [
            Problem(
                name,
                "oidc.E002",
                f"the issuer {issuer} is not HTTPS; http:// is allowed only with DEBUG on or "
                "OIDC_ALLOW_INSECURE_ISSUER=on (tests)",
            )
        ]
    return []


def _fetch_discovery(backend: OpenIdConnectAuth) -> Any:
    """The provider's discovery document, fetched now (not from the cache), or the ``Problem``."""
    name, url = backend.name, backend.oidc_config_url()
    timeout = float(backend.setting("REQUESTS_TIMEOUT", 5.0) or 5.0)
    try:
        response = requests.get(
            url,
            timeout=timeout,
            headers={"Accept": "application/json"},
            proxies=backend.setting("PROXIES"),
            verify=backend.setting("VERIFY_SSL", True),
        )
    except requests.RequestException as error:
        return Problem(
            name, "oidc.E003", f"discovery {url} is unreachable ({type(error).__name__})", unreachable=True
        )
    if response.status_code != 200:
        return Problem(
            name,
            "oidc.E003",
            f"discovery {url} answered HTTP {response.status_code}",
            unreachable=response.status_code >= 500,
        )
    try:
        return response.json()
    except ValueError:
        return Problem(name, "oidc.E003", f"discovery {url} did not answer JSON")


def shared_client_problems() -> list[Problem]:
    """Issue 20.6: two providers with the same issuer and client id are one client twice.

    One person would get two identities (maybe two profiles), and RFC 9207 ``iss`` cannot tell
    the two callbacks apart. Settings only, no network.
    """
    seen: dict[tuple[str, str], str] = {}
    problems = []
    strategy = load_strategy()
    for backend_cls in configured_backends():
        backend = backend_cls(strategy)
        endpoint, key = backend.setting("OIDC_ENDPOINT"), backend.setting("KEY")
        if not isinstance(endpoint, str) or not endpoint or not key:
            continue  # reported as oidc.E001
        pair = (endpoint.rstrip("/"), str(key))
        if pair in seen:
            problems.append(
                Problem(
                    backend.name,
                    "oidc.E010",
                    f"it has the same issuer ({pair[0]}) and client id as provider {seen[pair]!r}; "
                    "register a separate client at the provider for each, or configure it once",
                )
            )
        else:
            seen[pair] = backend.name
    return problems


def issuer_binding_problems() -> list[Problem]:
    """Issue 20.1: identities bound to an issuer their provider no longer has (settings + database)."""
    return [
        Problem(
            problem.provider,
            "oidc.E020",
            problem.detail()
            + f". If the provider really moved, run: manage.py accounts_oidc_issuer {problem.provider} "
            f"--to {problem.issuer} --dry-run (then without --dry-run); otherwise restore its previous "
            "endpoint",
        )
        for problem in binding_problems()
    ]


def settings_problems() -> list[Problem]:
    """Problems found without fetching anything: shared clients and issuer bindings."""
    return shared_client_problems() + issuer_binding_problems()


@register("oidc_identities")
def check_issuer_bindings(app_configs=None, **kwargs) -> list[CheckMessage]:
    """``manage.py check``: identities bound to an issuer their provider no longer has (reads the
    database; its own tag so ``check --tag oidc`` stays a settings-and-discovery check)."""
    return [
        Error(
            f"OpenID Connect provider {problem.provider!r}: {problem.message}.",
            hint="See docs/oidc.md.",
            id=problem.id,
        )
        for problem in issuer_binding_problems()
    ]


@register("oidc")
def check_oidc_providers(app_configs=None, **kwargs) -> list[CheckMessage]:
    """``manage.py check``: every configured OpenID Connect provider's discovery, fetched now."""
    messages: list[CheckMessage] = []
    for problem in shared_client_problems():
        text = f"OpenID Connect provider {problem.provider!r}: {problem.message}."
        messages.append(Error(text, hint="See docs/oidc.md.", id=problem.id))
    for backend_cls in configured_backends():
        for problem in provider_problems(backend_cls):
            text = f"OpenID Connect provider {problem.provider!r}: {problem.message}."
            hint = "See docs/oidc.md."
            if problem.is_error:
                messages.append(Error(text, hint=hint, id=problem.id))
            else:
                messages.append(CheckWarning(text, hint=hint, id=problem.id))
    return messages


def validate_at_startup() -> None:
    """Check every configured provider once when the site starts.

    A misconfiguration (issuer mismatch, no code flow, http:// in production, ...) raises
    ``ImproperlyConfigured`` naming the provider and the problem. An unreachable provider is only
    logged: one provider's outage must not keep the site (and the other providers) down.
    With ``OIDC_CHECK_DISCOVERY=off`` only the settings are checked (no network).
    """
    fatal = [
        f"OpenID Connect provider {problem.provider!r}: {problem.message} [{problem.id}]"
        for problem in settings_problems()
    ]
    for backend_cls in configured_backends():
        for problem in provider_problems(backend_cls):
            line = f"OpenID Connect provider {problem.provider!r}: {problem.message} [{problem.id}]"
            if problem.unreachable:
                logger.error("%s; sign-in with it fails until it answers", line)
            elif problem.is_error:
                fatal.append(line)
            else:
                logger.warning("%s", line)
    if fatal:
        raise ImproperlyConfigured("\n".join(fatal) + "\nSee docs/oidc.md.")
