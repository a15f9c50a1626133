"""The OpenID Connect backend: ``OpenIdConnectAuth`` (backend name ``oidc``).

It keeps social-core's OpenID Connect code (state, nonce, discovery and JWKS caching, ``at_hash``,
refresh continuity) and tightens what it leaves open: PKCE S256 always; ID tokens as
:class:`accounts.oidc.id_tokens.StrictIdTokens` checks them; the RFC 9207 ``iss``
authorization-response parameter is checked; UserInfo must name the ID token's subject and give
its claims their JSON types; discovery must pass :func:`accounts.oidc.discovery.discovery_problems`
(the configured issuer, endpoints on the issuer's host unless ``OIDC_<NAME>_ENDPOINT_HOSTS`` allows
another); ``offline_access`` (with ``prompt=consent``) is asked for so a refresh token is issued;
refresh authenticates the client the same way as the code exchange; an identity is bound to its
issuer (``accounts.issuers``). Named providers' classes subclass it (``accounts.oidc.named``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from requests.auth import HTTPBasicAuth
from social_core.backends.open_id_connect import OpenIdConnectAuth as _OpenIdConnectAuth
from social_core.backends.utils import OIDCDiscoveryMixin
from social_core.exceptions import AuthConfigurationError, AuthResponseError, SocialAuthBaseException
from social_core.utils import constant_time_compare

from accounts.backend_mixins import ProviderProfileMixin, lower_domain
from accounts.issuers import refuse_other_issuer

from .config import insecure_issuer_allowed, setting_prefix, split_list
from .discovery import discovery_problems
from .id_tokens import StrictIdTokens

#: Longest token lifetime believed from ``expires_in`` (ten years); longer is a malformed answer.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600


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

#: Settings the site fixes for every OIDC backend, whatever the environment says.
_PINNED_SETTINGS = {"USE_PKCE": True, "PKCE_CODE_CHALLENGE_METHOD": "S256"}


class OpenIdConnectAuth(ProviderProfileMixin, StrictIdTokens):
    """Any OpenID Connect provider; ``name`` ``oidc`` here, one subclass per named provider."""

    name = "oidc"
    title = "OpenID Connect"
    FRESH_LOGIN_ARGUMENTS = {"prompt": "login", "max_age": "0"}
    DEFAULT_USE_PKCE = True
    PKCE_DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def setting(self, name: str, default: Any = None) -> Any:
        if name in _PINNED_SETTINGS:
            return _PINNED_SETTINGS[name]
        return super().setting(name, default)

    def account_name(self, response: dict[str, Any]) -> str:
        return str(response.get("preferred_username") or response.get("name") or response.get("email") or "")

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        email = lower_domain(str(response.get("email") or ""))
        trusted = bool(self.setting("TRUST_EMAIL_VERIFIED", False))
        return email, trusted and bool(email) and response.get("email_verified") is True

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
        sub = self.id_token.get("sub") if isinstance(self.id_token, dict) else None
        if isinstance(sub, str):
            refuse_other_issuer(backend=self, uid=sub, issuer=self.identity_issuer())
        return super().user_data(access_token, *args, **kwargs)

    def process_refresh_token_response(self, response: Any, *args: Any, **kwargs: Any) -> dict:
        data = super().process_refresh_token_response(response, *args, **kwargs)
        self.check_token_response(data, stage="refresh")
        return data

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


def clear_caches() -> None:
    """Forget every cached discovery document and JWKS (tests; a provider moved)."""
    OIDCDiscoveryMixin.get_openid_configuration.invalidate()
    _OpenIdConnectAuth.get_jwks_keys_for_uri.invalidate()
