"""The project's social-auth backends: thin subclasses of the real ones.

They keep the providers' names (``google-oauth2``, ``github``, ``oidc``) and protocol code, and add
only what the site needs: the strict per-provider "verified email" rule (``verified_email``), URLs
that can be pointed elsewhere (the sandbox), and forced-fresh sign-in for re-authentication.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.views.decorators.debug import sensitive_variables
from social_core.backends.github import GithubOAuth2 as _GithubOAuth2
from social_core.backends.google import GoogleOAuth2 as _GoogleOAuth2
from social_core.backends.oauth import BaseOAuth2PKCE
from social_core.exceptions import SocialAuthBaseException

GOOGLE_USERINFO_URL = "https://www.googleapis.com/oauth2/v3/userinfo"


def _lower_domain(email: str) -> str:
    """Lower-case the domain only: the local part is the provider's business (DESIGN.md)."""
    local, sep, domain = email.strip().rpartition("@")
    if not sep:
        return email.strip()
    return f"{local}@{domain.lower()}"


class ProviderProfileMixin:
    """What every backend here answers about a completed sign-in's profile."""

    #: Query arguments that make the provider ask for a fresh sign-in (re-authentication).
    FRESH_LOGIN_ARGUMENTS: dict[str, str] = {}

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        """The account's email and whether the provider verified it, by this provider's rule."""
        raise NotImplementedError

    def account_name(self, response: dict[str, Any]) -> str:
        return str(response.get("name") or response.get("email") or "")

    def avatar_url(self, response: dict[str, Any]) -> str:
        return str(response.get("picture") or "")

    def state_consumed(self) -> bool:
        """True once this callback's ``state`` was the pending flow's and has been used up.

        A callback whose state is not the pending one (a forged GET to ``/complete/...``) leaves
        the pending flow alone (``AuthFlowErrorMiddleware``), so the real callback still completes.
        """
        return isinstance(getattr(self, "_oauth2_transaction", None), dict)

    def process_error(self, data: Any, *, stage: Any = "callback") -> None:
        # social-core checks an error callback (``error=access_denied``) before it looks at the
        # state, so the state would survive the error and a fresh code could be redeemed with it
        # later. Use the state up first (it refuses a state that is not the pending one).
        if stage == "callback" and (
            self.get_provider_error(data, stage=stage) is not None or "denied" in data  # type: ignore[attr-defined]
        ):
            self.validate_state()  # type: ignore[attr-defined]
        super().process_error(data, stage=stage)  # type: ignore[misc]

    @sensitive_variables()
    def do_auth(self, access_token: str, *args: Any, **kwargs: Any) -> Any:
        """Run the profile lookup and the pipeline; tokens the flow does not keep get revoked.

        The code has been redeemed by now. When the pipeline refuses (its transaction rolls back)
        or stops at a question without linking, the provider's fresh tokens are handed to be
        revoked, after the rollback so that survives (``accounts.refusals``).
        """
        from . import refusals  # not at import time: settings import this module (via accounts.oidc)

        response = kwargs.get("response") or {}
        issued = {key: response[key] for key in refusals.TOKEN_RESPONSE_KEYS if key in response}
        issued.setdefault("access_token", access_token)
        starting_user = kwargs.get("user")
        try:
            result = super().do_auth(access_token, *args, **kwargs)  # type: ignore[misc]
        except SocialAuthBaseException as error:
            self._after_refusal(response, issued, starting_user, reason=str(error.code))
            raise
        except Exception:
            self._after_refusal(response, issued, starting_user, reason="error")
            raise
        if not isinstance(result, get_user_model()) and "access_token" in response:
            # Stopped at a question (an existing profile, a merge proof) before the vault's step
            # took the tokens (it removes them from ``response``): nothing keeps these tokens, and
            # the next round trip gets new ones.
            self._after_refusal(response, issued, starting_user, reason="not_kept")
        return result

    @sensitive_variables()
    def _after_refusal(
        self, response: dict[str, Any], issued: dict[str, Any], starting_user: Any, *, reason: str
    ) -> None:
        from . import refusals

        try:
            uid = str(self.get_user_id(self.get_user_details(response), response) or "")  # type: ignore[attr-defined]
        except Exception:  # the profile call itself failed: no subject to name
            uid = ""
        owner = starting_user if getattr(starting_user, "is_authenticated", False) else None
        request = getattr(self.strategy, "request", None)  # type: ignore[attr-defined]
        if reason == "identity_in_use" and uid:
            refusals.identity_in_use_attempt(
                provider=self.name,  # type: ignore[attr-defined]
                uid=uid,
                attempted_by=owner,
                request=request,
            )
        refusals.hand_over_unkept_tokens(
            provider=self.name,  # type: ignore[attr-defined]
            uid=uid,
            owner=owner,
            tokens=issued,
            reason=reason,
        )

    def pipeline(self, pipeline: list[str], pipeline_index: int = 0, *args: Any, **kwargs: Any) -> Any:
        # Every provider call has happened by the time the pipeline runs, so it can be one
        # transaction: a refused or failed step leaves no user, identity or token half-made.
        with transaction.atomic():
            return super().pipeline(pipeline, pipeline_index, *args, **kwargs)  # type: ignore[misc]

    def get_scope(self) -> list[str]:
        # Scopes asked for by the flow in progress (a "Connect with these scopes" button or an
        # agent's connect request) come on top of the configured ones.
        scope = list(super().get_scope())  # type: ignore[misc]
        request = getattr(self.strategy, "request", None)  # type: ignore[attr-defined]
        if request is not None and hasattr(request, "session"):
            flow = request.session.get(f"auth_flow:{self.name}") or {}  # type: ignore[attr-defined]
            scope += [s for s in flow.get("scopes", []) if isinstance(s, str) and s not in scope]
        return scope

    def auth_extra_arguments(self) -> dict[str, str]:
        extra = dict(super().auth_extra_arguments())  # type: ignore[misc]
        if self.strategy.session_get("auth_flow_fresh"):  # type: ignore[attr-defined]
            extra.update(self.FRESH_LOGIN_ARGUMENTS)
        return extra


class PkceS256Mixin(BaseOAuth2PKCE):
    """PKCE S256 (RFC 7636) on a provider whose social-core class is plain OAuth2.

    social-core's own ``BaseOAuth2PKCE`` does the work (the verifier is kept in the flow's one-time
    state transaction, the challenge goes in the authorize URL, the verifier in the token request);
    this only pins it on and to S256, whatever the environment says: a stolen code is then useless
    without the browser session that started the flow.
    """

    DEFAULT_USE_PKCE = True
    PKCE_DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    _PINNED_PKCE_SETTINGS = {"USE_PKCE": True, "PKCE_CODE_CHALLENGE_METHOD": "S256"}

    def setting(self, name: str, default: Any = None) -> Any:
        if name in self._PINNED_PKCE_SETTINGS:
            return self._PINNED_PKCE_SETTINGS[name]
        return super().setting(name, default)


class GoogleOAuth2(ProviderProfileMixin, PkceS256Mixin, _GoogleOAuth2):
    FRESH_LOGIN_ARGUMENTS = {"prompt": "login consent", "max_age": "0"}

    def userinfo_url(self) -> str:
        return GOOGLE_USERINFO_URL

    def user_data(self, access_token: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        # Same call as the parent, against a URL we can point at the sandbox. Unlike social-core 7
        # we accept an unverified address: the identity is keyed by ``sub`` and an unverified
        # email simply never counts for linking.
        return self.get_json(self.userinfo_url(), headers={"Authorization": f"Bearer {access_token}"})

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        email = _lower_domain(str(response.get("email") or ""))
        return email, bool(email) and response.get("email_verified") is True


class GithubOAuth2(ProviderProfileMixin, PkceS256Mixin, _GithubOAuth2):
    FRESH_LOGIN_ARGUMENTS = {"prompt": "select_account"}

    def account_name(self, response: dict[str, Any]) -> str:
        return str(response.get("login") or response.get("name") or "")

    def avatar_url(self, response: dict[str, Any]) -> str:
        return str(response.get("avatar_url") or "")

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        # Only /user/emails says whether GitHub verified an address; the public profile email
        # alone proves nothing. Prefer the primary verified address.
        emails = [e for e in response.get("emails") or [] if isinstance(e, dict) and e.get("email")]
        verified = [e for e in emails if e.get("verified") is True]
        chosen = next((e for e in verified if e.get("primary")), None) or (verified[0] if verified else None)
        if chosen:
            return _lower_domain(chosen["email"]), True
        fallback = response.get("email") or (emails[0]["email"] if emails else "")
        return _lower_domain(str(fallback or "")), False


def __getattr__(name: str) -> Any:
    # The OpenID Connect backend lives in accounts.oidc; this keeps "accounts.backends.OpenIdConnectAuth"
    # importable. (Lazy, because accounts.oidc imports ProviderProfileMixin from this module.)
    if name == "OpenIdConnectAuth":
        from .oidc import OpenIdConnectAuth

        return OpenIdConnectAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
