"""OpenID Connect providers: configuration, the backend class, and start-up checks.

Any standards-compliant OpenID Connect provider (Okta, Keycloak, Entra ID, ...) is a social-auth
backend here. Two ways to configure them (docs/oidc.md has the details):

* one provider, with social-auth's own names: ``SOCIAL_AUTH_OIDC_OIDC_ENDPOINT`` / ``_KEY`` /
  ``_SECRET`` (backend ``oidc``, callback ``/complete/oidc/``);
* several, each named: ``OIDC_PROVIDERS=okta,keycloak`` and per provider ``OIDC_OKTA_ENDPOINT``,
  ``OIDC_OKTA_KEY``, ``OIDC_OKTA_SECRET`` (and optional ``_TITLE``, ``_SCOPES``,
  ``_TRUST_EMAIL_VERIFIED``, ...). Each becomes its own backend (``okta``, callback
  ``/complete/okta/``) whose class this module makes on demand: ``accounts.oidc.OIDC_okta``
  (``-`` in a name becomes ``_`` in the class name: ``entra-id`` -> ``OIDC_entra_id``).

``settings.py`` calls :func:`named_provider_settings` to turn the environment into social-auth
settings (``SOCIAL_AUTH_<NAME>_*``) and backend paths.

The backend keeps social-core's OpenID Connect code (state, nonce, discovery and JWKS caching,
``at_hash``, refresh continuity) and tightens what it leaves open: PKCE S256 always; only the
asymmetric ID-token algorithms the provider advertises (``alg: none`` and HS256 signed with the
client secret are refused); a JWKS key must fit the token's algorithm; extra ID-token audiences are
refused unless trusted; the RFC 9207 ``iss`` authorization-response parameter is checked; UserInfo
must name the ID token's subject; discovery must name the configured issuer; ``offline_access``
(with ``prompt=consent``) is asked for so a refresh token is issued; refresh authenticates the
client the same way as the code exchange. The vault checks a refreshed ID token with
:meth:`OpenIdConnectAuth.validate_refreshed_id_token`.

Issue 20 added: every claim's JSON type is checked before use (``invalid_claim``, never a
``TypeError``); discovery endpoints must be on the issuer's host unless ``OIDC_<NAME>_ENDPOINT_HOSTS``
allows another; two providers sharing issuer and client id are a check error; unknown ``kid``s
re-fetch the JWKS at most once per provider per ``JWKS_REFETCH_SECONDS`` (shared cache); and an
identity is bound to its issuer (``accounts.issuers``: refused sign-ins, ``oidc.E020``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured
from jwt.utils import base64url_decode
from requests.auth import HTTPBasicAuth
from social_core.backends.open_id_connect import OpenIdConnectAuth as _OpenIdConnectAuth
from social_core.backends.utils import OIDCDiscoveryMixin, jwt_error
from social_core.exceptions import (
    AuthConfigurationError,
    AuthResponseError,
    SocialAuthBaseException,
)
from social_core.utils import constant_time_compare

from .backends import ProviderProfileMixin, _lower_domain

logger = logging.getLogger(__name__)

#: ID-token signature algorithms this site accepts (when the provider advertises them): asymmetric
#: only, so a token signed with the client secret (HS*) or unsigned (``none``) never verifies.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_KEY_TYPE_FOR_ALGORITHM = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
#: At most one JWKS re-fetch per provider in this many seconds for an unknown ``kid``.
JWKS_REFETCH_SECONDS = 60

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

#: Class-name prefix of named providers' backends (``accounts.oidc.OIDC_<name>``).
CLASS_PREFIX = "OIDC_"
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


# --- configuration from the environment -----------------------------------------------------------


def setting_prefix(name: str) -> str:
    """``okta`` -> ``OKTA``; ``entra-id`` -> ``ENTRA_ID`` (how social-auth names settings)."""
    return name.upper().replace("-", "_")


def class_name(name: str) -> str:
    return CLASS_PREFIX + name.replace("-", "_")


def backend_path(name: str) -> str:
    """The AUTHENTICATION_BACKENDS entry of a named provider."""
    return f"{__name__}.{class_name(name)}"


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
        merged: dict[str, Any] = {}
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
    providers = []
    for name in names:
        check_name(name)
        prefix = f"OIDC_{setting_prefix(name)}_"
        values = {}
        for required in ("ENDPOINT", "KEY", "SECRET"):
            value = (_get(environ, prefix + required) or "").strip()
            if not value:
                raise ImproperlyConfigured(
                    f"OIDC_PROVIDERS lists {name!r} but {prefix}{required} is not set."
                    + (
                        " It is the issuer URL: discovery is read from"
                        " <issuer>/.well-known/openid-configuration."
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
        scopes = [s for s in split_list(_get(environ, prefix + "SCOPES")) if s != "openid"]
        providers.append(
            ProviderConfig(
                name=name,
                endpoint=endpoint,
                key=values["KEY"],
                secret=values["SECRET"],
                title=(_get(environ, prefix + "TITLE") or "").strip(),
                scopes=scopes,
                trust_email_verified=_bool(environ, prefix + "TRUST_EMAIL_VERIFIED", False),
                offline_access=_bool(environ, prefix + "OFFLINE_ACCESS", True),
                consent_prompt=_bool(environ, prefix + "CONSENT_PROMPT", True),
                trusted_audiences=split_list(_get(environ, prefix + "TRUSTED_AUDIENCES")),
                token_auth_method=method,
                endpoint_hosts=_endpoint_hosts(
                    split_list(_get(environ, prefix + "ENDPOINT_HOSTS")), variable=prefix + "ENDPOINT_HOSTS"
                ),
            )
        )
    return NamedProviders(providers)


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


#: Discovery endpoints the site sends the client secret, codes or tokens to, or trusts keys from.
DISCOVERY_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
)


def insecure_issuer_allowed() -> bool:
    """``http://`` issuers are accepted only in development (DEBUG) or when explicitly allowed."""
    return bool(settings.DEBUG or getattr(settings, "OIDC_ALLOW_INSECURE_ISSUER", False))


def _same_issuer(discovered: Any, configured: str) -> bool:
    # OpenID Connect Discovery 4.3: the discovered issuer is the URL discovery was read from.
    # Tolerate only a trailing slash (the discovery URL is built without it).
    return isinstance(discovered, str) and discovered.rstrip("/") == configured.rstrip("/")


def discovery_problems(
    document: Any,
    *,
    configured_issuer: str,
    allow_insecure: bool,
    offline_access: bool = True,
    endpoint_hosts: list[str] | tuple[str, ...] = (),
    hosts_setting: str = "OIDC_<NAME>_ENDPOINT_HOSTS",
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What is wrong with a discovery document for this site: ``(errors, warnings)``.

    Each entry is ``(check id suffix, message)``; the system check and the backend both use this.
    """
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    if not isinstance(document, dict):
        return [("E003", "the discovery document is not a JSON object")], []
    issuer = document.get("issuer")
    if not _same_issuer(issuer, configured_issuer):
        errors.append(
            (
                "E004",
                f"discovery names the issuer {issuer!r}, not the configured {configured_issuer!r} "
                "(set the endpoint to exactly the provider's issuer URL)",
            )
        )
    response_types = document.get("response_types_supported") or []
    grant_types = document.get("grant_types_supported") or ["authorization_code", "implicit"]
    if "code" not in response_types or "authorization_code" not in grant_types:
        errors.append(
            (
                "E005",
                "the provider does not support the authorization code flow "
                f"(response_types_supported={response_types!r}, grant_types_supported={grant_types!r})",
            )
        )
    missing = [
        key
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")
        if not isinstance(document.get(key), str) or not document.get(key)
    ]
    if missing:
        errors.append(("E006", f"discovery has no {', '.join(missing)}"))
    # Issue 20.5: the client secret, codes and tokens go only to the issuer's host, or to hosts
    # staff listed for this provider (Google and Entra ID keep some endpoints on other hosts).
    issuer_host = url_host(configured_issuer)
    allowed_hosts = {issuer_host, *(str(h).lower() for h in endpoint_hosts)}
    for key in DISCOVERY_ENDPOINTS:
        value = document.get(key)
        if isinstance(value, str) and value and url_host(value) not in allowed_hosts:
            errors.append(
                (
                    "E011",
                    f"discovery puts the {key} on host {url_host(value)!r}, not the issuer's host "
                    f"{issuer_host!r}; if that host really belongs to the provider, allow it with "
                    f"{hosts_setting}={url_host(value)}",
                )
            )
    if not allow_insecure:
        insecure = [
            key
            for key in (
                "issuer",
                "authorization_endpoint",
                "token_endpoint",
                "jwks_uri",
                "userinfo_endpoint",
                "revocation_endpoint",
            )
            if isinstance(document.get(key), str) and urlsplit(document[key]).scheme != "https"
        ]
        if insecure:
            errors.append(
                (
                    "E002",
                    f"{', '.join(insecure)} not HTTPS "
                    "(http:// is allowed only with DEBUG or OIDC_ALLOW_INSECURE_ISSUER)",
                )
            )
    algorithms = document.get("id_token_signing_alg_values_supported")
    if not isinstance(algorithms, list):
        algorithms = ["RS256"]
    if not [alg for alg in algorithms if alg in ASYMMETRIC_ALGORITHMS]:
        errors.append(
            (
                "E007",
                f"the provider signs ID tokens only with {algorithms!r}; this site accepts only "
                f"{', '.join(ASYMMETRIC_ALGORITHMS)}",
            )
        )
    auth_methods = document.get("token_endpoint_auth_methods_supported")
    if isinstance(auth_methods, list) and not {"client_secret_basic", "client_secret_post"} & set(
        auth_methods
    ):
        errors.append(
            (
                "E009",
                "the token endpoint accepts neither client_secret_basic nor client_secret_post "
                f"(it lists {auth_methods!r})",
            )
        )
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        errors.append(("E008", f"the provider does not support PKCE S256 (it lists {methods!r})"))
    if not document.get("revocation_endpoint"):
        warnings.append(
            ("W001", "discovery advertises no revocation_endpoint: tokens cannot be revoked on disconnect")
        )
    scopes = document.get("scopes_supported")
    if offline_access and isinstance(scopes, list) and "offline_access" not in scopes:
        warnings.append(
            (
                "W002",
                "scopes_supported lacks offline_access: the provider may issue no refresh token "
                "(set OIDC_<NAME>_OFFLINE_ACCESS=off if it issues them another way)",
            )
        )
    return errors, warnings


# --- claim types (issue 20.7) -------------------------------------------------------------------------

#: RFC 7519 NumericDate claims: JSON numbers. A string, boolean or list is refused, not coerced.
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf", "auth_time")
#: Claims this site compares as strings when present.
STRING_CLAIMS = ("iss", "sub", "azp", "nonce", "at_hash", "c_hash", "sid", "acr")
#: 9999-12-31T23:59:59Z: a later "date" cannot be turned into a datetime (and is not a date).
MAX_NUMERIC_DATE = 253402300799
#: OpenID Connect Core 2: ``sub`` is at most 255 ASCII characters (also the ``uid`` column's size).
MAX_SUB_LENGTH = 255
#: Longest token lifetime believed from ``expires_in`` (ten years); longer is a malformed answer.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value  # not NaN
        and 0 <= value <= MAX_NUMERIC_DATE
    )


def id_token_claim_problem(claims: Any) -> str | None:
    """The first ID-token claim whose JSON type is not what the specifications say, or None.

    Checked on the signature-verified payload before any claim is compared, so a numeric string
    ``iat`` or a list ``exp`` is a clean refusal instead of a ``TypeError`` (a 500 page).
    """
    if not isinstance(claims, dict):
        return "payload"
    for claim in NUMERIC_DATE_CLAIMS:
        if claim in claims and not _is_number(claims[claim]):
            return claim
    for claim in STRING_CLAIMS:
        if claim in claims and not isinstance(claims[claim], str):
            return claim
    sub = claims.get("sub")
    if "sub" in claims and (not sub or len(sub) > MAX_SUB_LENGTH):
        return "sub"
    if "aud" in claims:
        aud = claims["aud"]
        if isinstance(aud, list):
            if not aud or not all(isinstance(item, str) and item for item in aud):
                return "aud"
        elif not isinstance(aud, str) or not aud:
            return "aud"
    return None


def token_response_problem(response: Any) -> str | None:
    """The first token-response member (RFC 6749 5.1) of the wrong JSON type, or None."""
    if not isinstance(response, dict):
        return "response"
    expires_in = response.get("expires_in")
    if expires_in is not None and not (
        isinstance(expires_in, int) and not isinstance(expires_in, bool) and 0 <= expires_in <= MAX_EXPIRES_IN
    ):
        return "expires_in"
    for member in ("token_type", "scope", "refresh_token"):
        if response.get(member) is not None and not isinstance(response[member], str):
            return member
    return None


#: UserInfo claims this site stores or shows: strings when present (OpenID Connect Core 5.1).
USERINFO_STRING_CLAIMS = ("email", "name", "preferred_username", "given_name", "family_name", "picture")


# --- the backend ------------------------------------------------------------------------------------

#: Settings the site fixes for every OIDC backend, whatever the environment says.
_PINNED_SETTINGS = {"USE_PKCE": True, "PKCE_CODE_CHALLENGE_METHOD": "S256"}


class OpenIdConnectAuth(ProviderProfileMixin, _OpenIdConnectAuth):
    """Any OpenID Connect provider; ``name`` ``oidc`` here, one subclass per named provider."""

    name = "oidc"
    title = "OpenID Connect"
    FRESH_LOGIN_ARGUMENTS = {"prompt": "login", "max_age": "0"}
    DEFAULT_USE_PKCE = True
    PKCE_DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    #: Clock skew tolerated on ``exp``/``iat``/``nbf``, seconds.
    JWT_LEEWAY = 30
    #: An ID token older than this (``iat``) is refused, seconds.
    ID_TOKEN_MAX_AGE = 600

    def setting(self, name: str, default: Any = None) -> Any:
        if name in _PINNED_SETTINGS:
            return _PINNED_SETTINGS[name]
        return super().setting(name, default)

    # --- profile (the strict per-provider rules of ProviderProfileMixin) ---------------------------

    def account_name(self, response: dict[str, Any]) -> str:
        return str(response.get("preferred_username") or response.get("name") or response.get("email") or "")

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        email = _lower_domain(str(response.get("email") or ""))
        trusted = bool(self.setting("TRUST_EMAIL_VERIFIED", False))
        return email, trusted and bool(email) and response.get("email_verified") is True

    # --- discovery ---------------------------------------------------------------------------------

    def configured_issuer(self) -> str:
        endpoint = self.setting("OIDC_ENDPOINT", self.OIDC_ENDPOINT) or ""
        if not isinstance(endpoint, str) or not endpoint:
            raise AuthConfigurationError(
                self, parameter="OIDC_ENDPOINT", code="missing_setting", stage="begin"
            )
        return endpoint

    def oidc_endpoint(self) -> str:
        return self.configured_issuer().rstrip("/")

    def identity_issuer(self) -> str:
        """The issuer an identity of this backend is bound to (``IdentityDetails.issuer``)."""
        return self.configured_issuer().rstrip("/")

    def endpoint_hosts(self) -> list[str]:
        """Hosts other than the issuer's that discovery may put endpoints on (staff-allowed)."""
        return [str(host).strip().lower() for host in split_list(self.setting("ENDPOINT_HOSTS", []) or [])]

    def endpoint_hosts_setting(self) -> str:
        if self.name == "oidc":
            return "SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS"
        return f"OIDC_{setting_prefix(self.name)}_ENDPOINT_HOSTS"

    def oidc_config(self) -> dict:
        config = super().oidc_config()
        errors, _warnings = discovery_problems(
            config,
            configured_issuer=self.configured_issuer(),
            allow_insecure=insecure_issuer_allowed(),
            offline_access=False,
            endpoint_hosts=self.endpoint_hosts(),
            hosts_setting=self.endpoint_hosts_setting(),
        )
        if errors:
            # The cached document stays (so the check is cheap); every use refuses it.
            raise AuthConfigurationError(
                self,
                f"OpenID Connect provider {self.name!r} is misconfigured: {errors[0][1]}",
                parameter="OIDC_ENDPOINT",
                code="invalid_setting",
                stage="begin",
            )
        return config

    # --- the authorization request -----------------------------------------------------------------

    def get_scope(self) -> list[str]:
        scope = [s for s in super().get_scope() if s != "openid"]
        scope.insert(0, "openid")
        if self.setting("OFFLINE_ACCESS", True) and "offline_access" not in scope:
            scope.append("offline_access")
        return scope

    def auth_extra_arguments(self) -> dict[str, str]:
        extra = dict(super().auth_extra_arguments())
        if "offline_access" in self.get_scope() and self.setting("CONSENT_PROMPT", True):
            # OpenID Connect Core 11: offline_access is ignored unless the user is asked to consent.
            prompt = extra.get("prompt", "").split()
            if "consent" not in prompt:
                prompt.append("consent")
            extra["prompt"] = " ".join(prompt)
        return extra

    # --- the authorization response (RFC 9207) ---------------------------------------------------

    def auth_complete(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self.validate_response_issuer()
        except AuthResponseError:
            # A mix-up: refused before the code goes anywhere. When it carried this flow's own
            # state, that flow is used up too (one use, success or failure); any other state
            # leaves the pending flow alone, like a forged callback.
            with contextlib.suppress(SocialAuthBaseException):
                self.validate_state()
            raise
        return super().auth_complete(*args, **kwargs)

    def validate_response_issuer(self) -> None:
        """RFC 9207: the ``iss`` of the authorization response must be this provider's issuer.

        Required when discovery says ``authorization_response_iss_parameter_supported``; compared
        whenever present. Checked before the code is used, so a mix-up sends no code anywhere.
        """
        iss = self.data.get("iss")
        advertised = self.oidc_config().get("authorization_response_iss_parameter_supported") is True
        if iss is None or iss == "":
            if advertised:
                raise AuthResponseError(
                    self,
                    "The authorization response has no iss parameter (RFC 9207)",
                    claim="iss",
                    code="missing_claim",
                    stage="callback",
                )
            return
        expected = self.id_token_issuer()
        if not isinstance(iss, str) or not constant_time_compare(iss, expected):
            raise AuthResponseError(
                self,
                "The authorization response comes from another issuer (RFC 9207 iss)",
                claim="iss",
                code="invalid_claim",
                stage="callback",
            )

    # --- the ID token ----------------------------------------------------------------------------

    def allowed_signing_algorithms(self) -> list[str]:
        """Asymmetric algorithms the provider advertises for ID tokens (RS256 when it says none)."""
        advertised = self.oidc_config().get("id_token_signing_alg_values_supported")
        if not isinstance(advertised, list):
            advertised = ["RS256"]
        return [alg for alg in advertised if alg in ASYMMETRIC_ALGORITHMS]

    @staticmethod
    def _key_fits(key: dict[str, Any], alg: str, kid: str | None) -> bool:
        if key.get("kty") != _KEY_TYPE_FOR_ALGORITHM.get(alg[:2]):
            return False
        if key.get("use") not in (None, "sig") or key.get("alg") not in (None, alg):
            return False
        return kid is None or key.get("kid") == kid

    def _verifying_key(self, id_token: str, alg: str, kid: str | None) -> jwt.PyJWK | None:
        """The JWKS key that verifies ``id_token``'s signature, or None.

        An unknown ``kid`` (the provider rotated its keys) re-fetches the JWKS once; a known key
        with a bad signature does not.
        """
        uri = self.jwks_uri()
        signing_input, _, signature = id_token.rpartition(".")
        try:
            raw_signature = base64url_decode(signature.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        keys = self.get_jwks_keys_for_uri(uri)
        for attempt in (1, 2):
            candidates = [key for key in keys if isinstance(key, dict) and self._key_fits(key, alg, kid)]
            for candidate in candidates:
                try:
                    jwk = jwt.PyJWK(candidate, algorithm=alg)
                    if jwk.Algorithm.verify(signing_input.encode("ascii"), jwk.key, raw_signature):
                        return jwk
                except (jwt.PyJWTError, ValueError, TypeError):
                    continue
            if attempt == 2 or (kid is not None and candidates):
                return None
            keys = self._newer_jwks_keys(uri, keys, kid)
            if keys is None:
                return None
        return None

    def _newer_jwks_keys(self, uri: str, known: list[Any], kid: str | None) -> list[Any] | None:
        """The provider's keys after a rotation, or None when a re-fetch is not allowed now.

        Issue 20: an ID token naming a ``kid`` nobody published must not cost a JWKS fetch per
        attempt. Another process's recent fetch is read from the shared cache first; otherwise one
        fetch per provider per ``JWKS_REFETCH_SECONDS`` (a gate in the cache, so it holds across
        processes and machines).
        """
        from django.core.cache import cache

        slot = f"oidc:jwks:{self.name}:{hashlib.sha256(uri.encode()).hexdigest()[:32]}"
        shared = cache.get(slot + ":keys")
        if (
            isinstance(shared, list)
            and shared != known
            and (kid is None or any(isinstance(key, dict) and key.get("kid") == kid for key in shared))
        ):
            return shared
        if not cache.add(slot + ":gate", 1, timeout=JWKS_REFETCH_SECONDS):
            logger.info("OIDC provider %r: unknown signing key; JWKS re-fetched recently", self.name)
            return None
        try:
            keys = self.get_jwks_keys_for_uri.refresh(self, uri)
        except SocialAuthBaseException as error:
            error.stage = "token_validation"
            raise
        cache.set(slot + ":keys", keys, timeout=86400)  # public keys: nothing secret
        return keys

    def decode_and_validate_id_token(self, id_token: str, access_token: str | None) -> dict[str, Any]:
        """Signature (provider's JWKS, advertised asymmetric algorithm), ``iss``, ``aud``, ``azp``,
        ``exp``, ``iat``, ``at_hash``. ``nonce`` and the ID token's age are checked by
        ``validate_claims`` (sign-in) or :meth:`validate_refreshed_id_token` (refresh)."""
        client_id, _secret = self.get_key_and_secret()
        if not isinstance(id_token, str) or id_token.count(".") != 2:
            raise AuthResponseError(
                self, "Malformed ID token", code="malformed_response", stage="token_validation"
            )
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as error:
            raise AuthResponseError(
                self, "Malformed ID token header", code="malformed_response", stage="token_validation"
            ) from error
        if str(header.get("typ", "")).lower() in ("at+jwt", "application/at+jwt"):
            # An RFC 9068 access token is not an ID token, however well signed.
            raise AuthResponseError(
                self, "Not an ID token (typ at+jwt)", code="invalid_claim", stage="token_validation"
            )
        alg = header.get("alg")
        allowed = self.allowed_signing_algorithms()
        if not isinstance(alg, str) or alg not in allowed:
            raise AuthResponseError(
                self,
                f"ID token signed with {alg!r}; this provider's accepted algorithms are {allowed!r}",
                code="invalid_signature",
                stage="token_validation",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthResponseError(
                self, "Malformed ID token kid", code="invalid_signature", stage="token_validation"
            )
        key = self._verifying_key(id_token, alg, kid)
        if key is None:
            raise AuthResponseError(
                self,
                "ID token signature does not verify with the provider's keys",
                code="invalid_signature",
                stage="token_validation",
            )
        self._check_claim_types(id_token)
        try:
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=[alg],
                audience=client_id,
                issuer=self.id_token_issuer(),
                leeway=float(self.setting("JWT_LEEWAY", self.JWT_LEEWAY)),
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise AuthResponseError(
                self, "ID token expired", claim="exp", code="response_expired", stage="token_validation"
            ) from error
        except jwt.ImmatureSignatureError as error:
            raise AuthResponseError(
                self,
                "ID token issued in the future (iat/nbf)",
                claim="iat",
                code="response_not_yet_valid",
                stage="token_validation",
            ) from error
        except jwt.PyJWTError as error:
            raise jwt_error(self, error) from error
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthResponseError(
                self, "ID token sub", claim="sub", code="invalid_claim", stage="token_validation"
            )
        self.validate_audiences(claims, client_id)
        self.validate_authorized_party(claims, client_id)
        if access_token is not None and not self._at_hash_ok(claims, access_token, alg):
            raise AuthResponseError(
                self, "ID token at_hash", claim="at_hash", code="invalid_claim", stage="token_validation"
            )
        return claims

    def _check_claim_types(self, id_token: str) -> None:
        """Refuse a (signature-verified) payload whose claims have the wrong JSON types."""
        try:
            payload = json.loads(base64url_decode(id_token.split(".")[1].encode("ascii")))
        except (ValueError, UnicodeError, RecursionError) as error:
            raise AuthResponseError(
                self, "Malformed ID token payload", code="malformed_response", stage="token_validation"
            ) from error
        claim = id_token_claim_problem(payload)
        if claim is not None:
            raise AuthResponseError(
                self,
                f"ID token claim {claim} has the wrong type",
                claim=claim,
                code="invalid_claim",
                stage="token_validation",
            )

    def check_token_response(self, response: Any, *, stage: str) -> None:
        member = token_response_problem(response)
        if member is not None:
            raise AuthResponseError(
                self,
                f"Token response member {member} has the wrong type",
                claim=member,
                code="invalid_claim",
                stage=stage,
            )

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        # Runs once the code is redeemed and the ID token validated, before UserInfo and the
        # pipeline (inside ``do_auth``, so a refusal here gets the fresh tokens revoked too).
        self.check_token_response(kwargs.get("response"), stage="token_validation")
        # Issue 20.1: a subject from another issuer never matches an identity bound to this one.
        from .issuers import refuse_other_issuer

        sub = self.id_token.get("sub") if isinstance(self.id_token, dict) else None
        if isinstance(sub, str):
            refuse_other_issuer(backend=self, uid=sub, issuer=self.identity_issuer())
        return super().user_data(access_token, *args, **kwargs)

    def process_refresh_token_response(self, response: Any, *args: Any, **kwargs: Any) -> dict:
        data = super().process_refresh_token_response(response, *args, **kwargs)
        self.check_token_response(data, stage="refresh")
        return data

    def _at_hash_ok(self, claims: dict[str, Any], access_token: str, alg: str) -> bool:
        try:
            return self.validate_at_hash(claims, access_token, {"alg": alg})
        except (NotImplementedError, AttributeError, ValueError):
            # PyJWT has no hash for this algorithm (EdDSA). at_hash is optional in the code flow,
            # where the access token comes straight from the token endpoint over TLS.
            return "at_hash" not in claims or alg == "EdDSA"

    def validate_audiences(self, claims: dict[str, Any], client_id: str) -> None:
        """OpenID Connect Core 3.1.3.7 (3): refuse audiences the site does not trust."""
        try:
            audiences = self.id_token_audiences(claims.get("aud"))
        except ValueError as error:
            raise AuthResponseError(
                self, "ID token aud", claim="aud", code="invalid_claim", stage="token_validation"
            ) from error
        trusted = {client_id, *split_list(self.setting("TRUSTED_AUDIENCES", []) or [])}
        if client_id not in audiences or audiences - trusted:
            raise AuthResponseError(
                self,
                "ID token is meant for audiences this site does not trust",
                claim="aud",
                code="invalid_claim",
                stage="token_validation",
            )

    # --- UserInfo ----------------------------------------------------------------------------------

    def validate_userinfo_sub(self, userinfo: dict[str, Any] | None) -> dict[str, Any] | None:
        """OpenID Connect Core 5.3.2: UserInfo's ``sub`` must be present and be the ID token's."""
        if not isinstance(userinfo, dict):
            raise AuthResponseError(self, code="malformed_response", stage="user_info")
        sub = userinfo.get("sub")
        expected = self.id_token.get("sub") if self.id_token is not None else None
        if (
            not isinstance(sub, str)
            or not isinstance(expected, str)
            or not constant_time_compare(sub, expected)
        ):
            raise AuthResponseError(
                self,
                "UserInfo names another subject than the ID token",
                claim="sub",
                code="invalid_claim",
                stage="user_info",
            )
        # Issue 20.7's family: what is shown or trusted must have the JSON type OpenID Connect
        # Core 5.1 gives it (a dict "email" would be stored as its repr; "true" is not true).
        for claim in USERINFO_STRING_CLAIMS:
            if userinfo.get(claim) is not None and not isinstance(userinfo[claim], str):
                raise AuthResponseError(
                    self, f"UserInfo {claim}", claim=claim, code="invalid_claim", stage="user_info"
                )
        if userinfo.get("email_verified") is not None and not isinstance(userinfo["email_verified"], bool):
            raise AuthResponseError(
                self,
                "UserInfo email_verified",
                claim="email_verified",
                code="invalid_claim",
                stage="user_info",
            )
        return userinfo

    # --- refresh -----------------------------------------------------------------------------------

    def refresh_token_params(self, token: str, *args: Any, **kwargs: Any) -> dict[str, str]:
        # Authenticate the client exactly as in the code exchange: a provider that registered the
        # client for client_secret_basic refuses credentials in the body (and vice versa).
        params = {"grant_type": "refresh_token", "refresh_token": token}
        if not self.use_basic_auth():
            client_id, client_secret = self.get_key_and_secret()
            params.update(client_id=client_id, client_secret=client_secret)
        return params

    def refresh_token_auth(self) -> HTTPBasicAuth | None:
        if self.use_basic_auth():
            client_id, client_secret = self.get_key_and_secret()
            return HTTPBasicAuth(client_id, client_secret)
        return None

    def validate_refreshed_id_token(
        self,
        id_token: str,
        expected_sub: str,
        *,
        context: dict[str, Any] | None = None,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        """Check an ID token from a refresh response; returns its claims.

        Fully validated as at sign-in (signature, ``iss``, ``aud``, ``azp``, ``exp``, ``iat`` and
        ``at_hash`` when ``access_token`` is given), and OpenID Connect Core 12.2: ``sub`` must be
        ``expected_sub`` (the identity's uid) and, with ``context`` (the identity's
        ``extra_data["_oidc_id_token_context"]``), ``iss``, ``aud``, ``auth_time`` and ``nonce``
        must match the original sign-in. Raises ``AuthResponseError`` (``invalid_claim``,
        ``invalid_signature``, ...) with stage ``refresh``.
        """
        try:
            claims = self.decode_and_validate_id_token(id_token, access_token)
            self.validate_required_id_token_claims(claims)
            self.validate_temporal_claims(claims)
            if not isinstance(expected_sub, str) or not constant_time_compare(claims["sub"], expected_sub):
                raise AuthResponseError(
                    self,
                    "Refreshed ID token is for another subject",
                    claim="sub",
                    code="invalid_claim",
                    stage="refresh",
                )
            if context is not None:
                self.validate_refresh_id_token_claims(context, claims)
        except SocialAuthBaseException as error:
            error.stage = "refresh"
            raise
        return claims


# --- named providers' classes ------------------------------------------------------------------------

_CLASSES: dict[str, type[OpenIdConnectAuth]] = {}


def backend_class(name: str) -> type[OpenIdConnectAuth]:
    """The backend class of the named provider ``name`` (made once, then reused)."""
    check_name(name)
    cls = _CLASSES.get(name)
    if cls is None:
        attr = class_name(name)
        cls = type(
            attr,
            (OpenIdConnectAuth,),
            {
                "name": name,
                "title": name.replace("-", " ").title(),
                "__module__": __name__,
                "__qualname__": attr,
                "__doc__": f"The OpenID Connect provider {name!r} (OIDC_{setting_prefix(name)}_*).",
            },
        )
        _CLASSES[name] = cls
    return cls


def __getattr__(attr: str) -> Any:
    # ``accounts.oidc.OIDC_okta`` (an AUTHENTICATION_BACKENDS entry) -> the class of ``okta``.
    if attr.startswith(CLASS_PREFIX) and len(attr) > len(CLASS_PREFIX):
        name = attr[len(CLASS_PREFIX) :].replace("_", "-")
        try:
            return backend_class(name)
        except ImproperlyConfigured as error:
            raise AttributeError(f"module {__name__!r} has no attribute {attr!r} ({error})") from None
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def clear_caches() -> None:
    """Forget every cached discovery document and JWKS (tests; a provider moved)."""
    OIDCDiscoveryMixin.get_openid_configuration.invalidate()
    _OpenIdConnectAuth.get_jwks_keys_for_uri.invalidate()


# --- checks: manage.py check and start-up -------------------------------------------------------------


def configured_backends() -> list[type[OpenIdConnectAuth]]:
    """The OIDC backend classes in AUTHENTICATION_BACKENDS."""
    from django.utils.module_loading import import_string

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
    from social_django.utils import load_strategy

    backend = backend_cls(load_strategy())
    name = backend.name
    problems: list[Problem] = []
    prefix = f"SOCIAL_AUTH_{setting_prefix(name)}_"
    for setting_name in ("OIDC_ENDPOINT", "KEY", "SECRET"):
        if not backend.setting(setting_name):
            problems.append(Problem(name, "oidc.E001", f"{prefix}{setting_name} is not set"))
    if problems:
        return problems
    issuer = backend.configured_issuer()
    allow_insecure = insecure_issuer_allowed()
    if urlsplit(issuer).scheme != "https" and not allow_insecure:
        problems.append(
            Problem(
                name,
                "oidc.E002",
                f"the issuer {issuer} is not HTTPS; http:// is allowed only with DEBUG on or "
                "OIDC_ALLOW_INSECURE_ISSUER=on (tests)",
            )
        )
        return problems
    if not getattr(settings, "OIDC_CHECK_DISCOVERY", True):
        return problems
    url = backend.oidc_config_url()
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
        return [
            Problem(
                name,
                "oidc.E003",
                f"discovery {url} is unreachable ({type(error).__name__})",
                unreachable=True,
            )
        ]
    if response.status_code != 200:
        return [
            Problem(
                name,
                "oidc.E003",
                f"discovery {url} answered HTTP {response.status_code}",
                unreachable=response.status_code >= 500,
            )
        ]
    try:
        document = response.json()
    except ValueError:
        return [Problem(name, "oidc.E003", f"discovery {url} did not answer JSON")]
    errors, warnings = discovery_problems(
        document,
        configured_issuer=issuer,
        allow_insecure=allow_insecure,
        offline_access=bool(backend.setting("OFFLINE_ACCESS", True)),
        endpoint_hosts=backend.endpoint_hosts(),
        hosts_setting=backend.endpoint_hosts_setting(),
    )
    problems += [Problem(name, f"oidc.{code}", message) for code, message in errors]
    problems += [Problem(name, f"oidc.{code}", message) for code, message in warnings]
    return problems


def shared_client_problems() -> list[Problem]:
    """Issue 20.6: two providers with the same issuer and client id are one client twice.

    One person would get two identities (maybe two profiles), and RFC 9207 ``iss`` cannot tell
    the two callbacks apart. Settings only, no network.
    """
    from social_django.utils import load_strategy

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
    from .issuers import binding_problems

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
