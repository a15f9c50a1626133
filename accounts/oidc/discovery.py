"""What a provider's discovery document must say before this site uses it.

One function, :func:`discovery_problems`, used by the backend (every use of the cached document)
and by the checks (``manage.py check``, start-up), so both refuse the same things.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .config import url_host

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

#: Discovery endpoints the site sends the client secret, codes or tokens to, or trusts keys from.
DISCOVERY_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
)


def _same_issuer(discovered: Any, configured: str) -> bool:
    # OpenID Connect Discovery 4.3: the discovered issuer is the URL discovery was read from.
    # Tolerate only a trailing slash (the discovery URL is built without it).
    return isinstance(discovered, str) and discovered.rstrip("/") == configured.rstrip("/")


#: Endpoints a discovery document must name.
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")
#: Members that must be HTTPS outside development (``OIDC_ALLOW_INSECURE_ISSUER``).
HTTPS_MEMBERS = ("issuer", *REQUIRED_ENDPOINTS, "revocation_endpoint")

Found = list[tuple[str, str]]


def discovery_problems(
    document: Any,
    *,
    configured_issuer: str,
    allow_insecure: bool,
    offline_access: bool = True,
    endpoint_hosts: list[str] | tuple[str, ...] = (),
    hosts_setting: str = "OIDC_<NAME>_ENDPOINT_HOSTS",
) -> tuple[Found, Found]:
    """What is wrong with a discovery document for this site: ``(errors, warnings)``.

    Each entry is ``(check id suffix, message)``; the system check and the backend both use this.
    """
    if not isinstance(document, dict):
        return [("E003", "the discovery document is not a JSON object")], []
    errors = [
        *_issuer_errors(document, configured_issuer),
        *_code_flow_errors(document),
        *_endpoint_errors(document, configured_issuer, endpoint_hosts, hosts_setting),
        *([] if allow_insecure else _https_errors(document)),
        *_algorithm_errors(document),
        *_client_errors(document),
    ]
    return errors, _warnings(document, offline_access=offline_access)


def _issuer_errors(document: dict[str, Any], configured_issuer: str) -> Found:
    issuer = document.get("issuer")
    if _same_issuer(issuer, configured_issuer):
        return []
    return [
        (
            "E004",
            f"discovery names the issuer {issuer!r}, not the configured {configured_issuer!r} "
            "(set the endpoint to exactly the provider's issuer URL)",
        )
    ]


def _code_flow_errors(document: dict[str, Any]) -> Found:
    response_types = document.get("response_types_supported") or []
    grant_types = document.get("grant_types_supported") or ["authorization_code", "implicit"]
    if "code" in response_types and "authorization_code" in grant_types:
        return []
    return [
        (
            "E005",
            "the provider does not support the authorization code flow "
            f"(response_types_supported={response_types!r}, grant_types_supported={grant_types!r})",
        )
    ]


def _endpoint_errors(
    document: dict[str, Any], configured_issuer: str, endpoint_hosts: Any, hosts_setting: str
) -> Found:
    errors = []
    missing = [
        key for key in REQUIRED_ENDPOINTS if not isinstance(document.get(key), str) or not document.get(key)
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
    return errors


def _https_errors(document: dict[str, Any]) -> Found:
    insecure = [
        key
        for key in HTTPS_MEMBERS
        if isinstance(document.get(key), str) and urlsplit(document[key]).scheme != "https"
    ]
    if not insecure:
        return []
    return [
        (
            "E002",
            f"{', '.join(insecure)} not HTTPS "
            "(http:// is allowed only with DEBUG or OIDC_ALLOW_INSECURE_ISSUER)",
        )
    ]


def _algorithm_errors(document: dict[str, Any]) -> Found:
    algorithms = document.get("id_token_signing_alg_values_supported")
    if not isinstance(algorithms, list):
        algorithms = ["RS256"]
    if [alg for alg in algorithms if alg in ASYMMETRIC_ALGORITHMS]:
        return []
    return [
        (
            "E007",
            f"the provider signs ID tokens only with {algorithms!r}; this site accepts only "
            f"{', '.join(ASYMMETRIC_ALGORITHMS)}",
        )
    ]


def _client_errors(document: dict[str, Any]) -> Found:
    """How the client authenticates (a client secret) and proves the code is its own (PKCE S256)."""
    errors = []
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
    return errors


def _warnings(document: dict[str, Any], *, offline_access: bool) -> Found:
    warnings = []
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
    return warnings
