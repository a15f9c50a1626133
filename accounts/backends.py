"""The Google and GitHub social-auth backends: thin subclasses of the real ones.

They keep the providers' names (``google-oauth2``, ``github``) and protocol code, and add only what
the site needs: the strict per-provider "verified email" rule (``verified_email``), URLs that can be
pointed elsewhere (the sandbox), and forced-fresh sign-in for re-authentication. What they share
with the OpenID Connect backend (``accounts.oidc.backend``) is in ``accounts.backend_mixins``.
"""

from __future__ import annotations

from typing import Any

from social_core.backends.github import GithubOAuth2 as _GithubOAuth2
from social_core.backends.google import GoogleOAuth2 as _GoogleOAuth2

from .backend_mixins import PkceS256Mixin, ProviderProfileMixin, lower_domain

GOOGLE_USERINFO_URL = "https://www.googleapis.com/oauth2/v3/userinfo"


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
        email = lower_domain(str(response.get("email") or ""))
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
            return lower_domain(chosen["email"]), True
        fallback = response.get("email") or (emails[0]["email"] if emails else "")
        return lower_domain(str(fallback or "")), False
