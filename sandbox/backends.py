"""The real Google and GitHub backends, pointed at the sandbox's stand-ins.

Only the URLs change: the protocol code (authorize, code exchange, refresh, revoke, profile calls)
is the parents', so signing in through the sandbox exercises what production runs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.backends import GithubOAuth2, GoogleOAuth2


def sandbox_base_url(strategy: Any) -> str:
    """The site's root URL, ending in ``/``.

    With a browser request, ``SITE_URL`` (never the request's ``Host`` header: the authorize URL
    and the redirect_uri must name the one registered address; a browser on another allowed host
    is first sent to SITE_URL's, see ``accounts.middleware.CanonicalHostMiddleware``); without one
    (server-side refresh and revocation), ``settings.SANDBOX_BASE_URL``.
    """
    request = getattr(strategy, "request", None)
    if request is not None:
        return str(settings.SITE_URL).rstrip("/") + "/"
    return str(settings.SANDBOX_BASE_URL).rstrip("/") + "/"


class SandboxGoogleOAuth2(GoogleOAuth2):
    """``google-oauth2`` against ``/sandbox/google/``."""

    name = "google-oauth2"

    def sandbox_url(self, path: str) -> str:
        return f"{sandbox_base_url(self.strategy)}sandbox/google/{path}"

    def authorization_url(self) -> str:
        return self.sandbox_url("authorize")

    def access_token_url(self) -> str:
        return self.sandbox_url("token")

    def revoke_token_url(self, token: str, uid: str) -> str:
        return self.sandbox_url("revoke")

    def userinfo_url(self) -> str:
        return self.sandbox_url("userinfo")


class SandboxGithubOAuth2(GithubOAuth2):
    """``github`` against ``/sandbox/github/`` (web flow) and ``/sandbox/github/api/`` (REST API)."""

    name = "github"

    def sandbox_url(self, path: str) -> str:
        return f"{sandbox_base_url(self.strategy)}sandbox/github/{path}"

    def authorization_url(self) -> str:
        return self.sandbox_url("login/oauth/authorize")

    def access_token_url(self) -> str:
        return self.sandbox_url("login/oauth/access_token")

    def api_url(self) -> str:
        return self.sandbox_url("api/")

    def revoke_token_url(self, token: str, uid: str) -> str:
        # GitHub's "delete an app authorization": DELETE, HTTP basic client_id:client_secret,
        # JSON body {"access_token": ...}.
        client_id, _secret = self.get_key_and_secret()
        return self.sandbox_url(f"api/applications/{client_id}/grant")
