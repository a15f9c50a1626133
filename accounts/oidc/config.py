"""OpenID Connect providers' configuration: the environment read into social-auth settings.

``settings.py`` calls :func:`named_provider_settings` to turn ``OIDC_PROVIDERS`` and each
``OIDC_<NAME>_*`` into ``SOCIAL_AUTH_<NAME>_*`` settings and backend paths. It runs while settings
load, so this module imports no model, backend or app code (only Django's settings object, read at
call time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: A provider name: lower-case letters and digits, single hyphens inside; it is the backend name,
#: the callback path segment and (upper-cased, ``-`` -> ``_``) the settings and environment prefix.
NAME_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,31}$")

#: Names a named provider may not take: ``oidc`` is the single-provider backend, ``vault`` is
#: social-core's own backend (``SOCIAL_AUTH_VAULT_*``), the others are this site's backends or
#: would make ``SOCIAL_AUTH_<NAME>_*`` collide with social-auth's global settings.
RESERVED_NAMES = frozenset(
    {
        "oidc",
        "vault",
        "google-oauth2",
        "github",
        "sandbox",
        "admin",
        "login",
        "new",
        "pipeline",
        "disconnect",
        "user",
        "url",
        "urls",
        "raise",
        "redirect",
        "requests",
        "protected",
        "sanitize",
        "strategy",
        "storage",
        "clean",
        "trailing",
        "inactive",
        "allowed",
        "whitelisted",
        "revoke",
        "fields",
    }
)

#: Class-name prefix of named providers' backends (``accounts.oidc.named.OIDC_<name>``).
CLASS_PREFIX = "OIDC_"
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
#: Where the named providers' classes are made (``accounts.oidc.named``). Spelled out, not
#: imported: that module imports the backend, which settings must not import.
NAMED_BACKENDS_MODULE = "accounts.oidc.named"


def setting_prefix(name: str) -> str:
    """``okta`` -> ``OKTA``; ``entra-id`` -> ``ENTRA_ID`` (how social-auth names settings)."""
    return name.upper().replace("-", "_")


def class_name(name: str) -> str:
    return CLASS_PREFIX + name.replace("-", "_")


def backend_path(name: str) -> str:
    """The AUTHENTICATION_BACKENDS entry of a named provider."""
    return f"{NAMED_BACKENDS_MODULE}.{class_name(name)}"


def split_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Space- and/or comma-separated words, in order, without duplicates."""
    if value is None:
        return []
    words = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
    out: list[str] = []
    for word in words:
        word = str(word).strip()
        if word and word not in out:
            out.append(word)
    return out


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise ImproperlyConfigured(
            f"OIDC_PROVIDERS: {name!r} is not a valid provider name. Use lower-case letters and digits, "
            "with single hyphens inside (for example 'okta' or 'entra-id'); at most 32 characters."
        )
    if name in RESERVED_NAMES:
        hint = (
            " For a single provider named 'oidc' use SOCIAL_AUTH_OIDC_OIDC_ENDPOINT / _KEY / _SECRET."
            if name == "oidc"
            else ""
        )
        raise ImproperlyConfigured(f"OIDC_PROVIDERS: the name {name!r} is reserved; pick another one.{hint}")


@dataclass(frozen=True)
class ProviderConfig:
    """One named provider, as read from ``OIDC_<NAME>_*``."""

    name: str
    endpoint: str
    key: str
    secret: str
    title: str = ""
    scopes: list[str] = field(default_factory=list)
    trust_email_verified: bool = False
    offline_access: bool = True
    consent_prompt: bool = True
    trusted_audiences: list[str] = field(default_factory=list)
    token_auth_method: str = ""
    endpoint_hosts: list[str] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return backend_path(self.name)

    def settings(self) -> dict[str, Any]:
        """The social-auth settings of this provider's backend (``SOCIAL_AUTH_<NAME>_*``)."""
        prefix = f"SOCIAL_AUTH_{setting_prefix(self.name)}_"
        return {
            prefix + "OIDC_ENDPOINT": self.endpoint,
            prefix + "KEY": self.key,
            prefix + "SECRET": self.secret,
            prefix + "TITLE": self.title or self.name.replace("-", " ").title(),
            prefix + "SCOPE": list(self.scopes),
            prefix + "TRUST_EMAIL_VERIFIED": self.trust_email_verified,
            prefix + "OFFLINE_ACCESS": self.offline_access,
            prefix + "CONSENT_PROMPT": self.consent_prompt,
            prefix + "TRUSTED_AUDIENCES": list(self.trusted_audiences),
            prefix + "TOKEN_ENDPOINT_AUTH_METHOD": self.token_auth_method,
            prefix + "ENDPOINT_HOSTS": list(self.endpoint_hosts),
            prefix + "USE_PKCE": True,
        }


@dataclass(frozen=True)
class NamedProviders:
    providers: list[ProviderConfig]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    @property
    def backends(self) -> list[str]:
        return [p.backend for p in self.providers]

    @property
    def settings(self) -> dict[str, Any]:
        """Every setting this configuration makes, ``OIDC_PROVIDERS`` (the names) included: the
        named backends' classes are made from it (``accounts.oidc.named``)."""
        merged: dict[str, Any] = {"OIDC_PROVIDERS": self.names}
        for provider in self.providers:
            merged.update(provider.settings())
        return merged


def _bool(environ: Any, name: str, default: bool) -> bool:
    raw = _get(environ, name)
    if raw is None:
        return default
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be on or off (got {raw!r}).")


def _get(environ: Any, name: str) -> str | None:
    """Read from an ``environ.Env`` (django-environ) or a plain mapping such as ``os.environ``."""
    if hasattr(environ, "str") and callable(environ.str):
        value = environ.str(name, default=None)
    else:
        value = environ.get(name)
    return None if value is None else str(value)


def named_provider_settings(environ: Any) -> NamedProviders:
    """Read ``OIDC_PROVIDERS`` and each provider's ``OIDC_<NAME>_*`` variables.

    ``environ`` is settings' ``environ.Env`` or any mapping of variable names to strings. Anything
    malformed or missing raises ``ImproperlyConfigured`` naming the variable.
    """
    names = split_list(_get(environ, "OIDC_PROVIDERS") or "")
    return NamedProviders([_provider_config(environ, name) for name in names])


def _provider_config(environ: Any, name: str) -> ProviderConfig:
    """One provider's ``OIDC_<NAME>_*`` variables, checked."""
    check_name(name)
    prefix = f"OIDC_{setting_prefix(name)}_"
    values = {}
    for required in ("ENDPOINT", "KEY", "SECRET"):
        value = (_get(environ, prefix + required) or "").strip()
        if not value:
            raise ImproperlyConfigured(
                f"OIDC_PROVIDERS lists {name!r} but {prefix}{required} is not set."
                + (
                    " It is the issuer URL: discovery is read from <issuer>/.well-known/openid-configuration."
                    if required == "ENDPOINT"
                    else ""
                )
            )
        values[required] = value
    endpoint = values["ENDPOINT"]
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"{prefix}ENDPOINT must be the provider's issuer URL, like https://idp.example.com/realms/x "
            f"(got {endpoint!r})."
        )
    method = (_get(environ, prefix + "TOKEN_AUTH_METHOD") or "").strip()
    if method and method not in TOKEN_AUTH_METHODS:
        raise ImproperlyConfigured(
            f"{prefix}TOKEN_AUTH_METHOD must be one of {', '.join(TOKEN_AUTH_METHODS)} (got {method!r})."
        )
    return ProviderConfig(
        name=name,
        endpoint=endpoint,
        key=values["KEY"],
        secret=values["SECRET"],
        title=(_get(environ, prefix + "TITLE") or "").strip(),
        scopes=[s for s in split_list(_get(environ, prefix + "SCOPES")) if s != "openid"],
        trust_email_verified=_bool(environ, prefix + "TRUST_EMAIL_VERIFIED", False),
        offline_access=_bool(environ, prefix + "OFFLINE_ACCESS", True),
        consent_prompt=_bool(environ, prefix + "CONSENT_PROMPT", True),
        trusted_audiences=split_list(_get(environ, prefix + "TRUSTED_AUDIENCES")),
        token_auth_method=method,
        endpoint_hosts=_endpoint_hosts(
            split_list(_get(environ, prefix + "ENDPOINT_HOSTS")), variable=prefix + "ENDPOINT_HOSTS"
        ),
    )


def endpoint_hosts_from(value: str | None, *, variable: str) -> list[str]:
    """``SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS`` (the single ``oidc`` provider's) from the environment."""
    return _endpoint_hosts(split_list(value), variable=variable)


_HOST_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?$")


def _endpoint_hosts(values: list[str], *, variable: str) -> list[str]:
    """Host names (``host`` or ``host:port``), lower-cased; anything else is a configuration error."""
    hosts = []
    for value in values:
        host = value.strip().lower()
        if not _HOST_PATTERN.match(host):
            raise ImproperlyConfigured(
                f"{variable}: {value!r} is not a host name; list host names such as login.example.com "
                "(no scheme, no path), space- or comma-separated."
            )
        hosts.append(host)
    return hosts


def url_host(url: str) -> str:
    """``https://Login.Example.com:443/x`` -> ``login.example.com``; a non-default port is kept."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return host + ":?"
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return host if port is None or port == default else f"{host}:{port}"


def insecure_issuer_allowed() -> bool:
    """``http://`` issuers are accepted only in development (DEBUG) or when explicitly allowed."""
    return bool(settings.DEBUG or getattr(settings, "OIDC_ALLOW_INSECURE_ISSUER", False))
