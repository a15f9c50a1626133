"""Revoking tokens at the provider: one call per provider kind, and how each answer reads.

Provider rules:

* Google: ``POST`` the form field ``token=`` to the backend's ``revoke_token_url`` (the refresh token
  when there is one, which ends the whole grant; never the token in a URL).
* GitHub: ``DELETE {api_url}applications/{client_id}/grant`` with HTTP basic client credentials and
  JSON ``{"access_token": ...}`` (ends the whole authorization).
* OpenID Connect: RFC 7009 ``POST`` to the ``revocation_endpoint`` discovery advertises, refresh
  token first, then the access token. Providers without one: nothing to call; the row is erased.

Apart from ``vault.revocation`` (which detaches, schedules, retries and records) because this is
the only part that talks to providers, the way ``vault.provider_calls`` is for refresh.
"""

from __future__ import annotations

from urllib.parse import urljoin

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_core.backends.github import GithubOAuth2
from social_core.backends.google import BaseGoogleOAuth2API
from social_core.backends.open_id_connect import OpenIdConnectAuth
from social_core.exceptions import AuthConfigurationError, SocialAuthBaseException
from social_django.models import UserSocialAuth
from social_django.utils import load_backend, load_strategy

from accounts.providers import is_configured

from . import errors
from .models import TokenSet


class RevocationFailed(Exception):
    """The provider did not confirm the revocation; ``code`` says why (no token text)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@sensitive_variables()
def revoke(token_set: TokenSet, *, even_if_linked: bool = False) -> str:
    """Revoke at the provider; returns how it ended, raises ``RevocationFailed`` to retry later."""
    if (
        not even_if_linked
        and UserSocialAuth.objects.filter(provider=token_set.provider, uid=token_set.uid).exists()
    ):
        return "relinked"
    if not is_configured(token_set.provider):
        # Issue 20.1: the provider was removed from the settings; there is nowhere to revoke at
        # (and a name re-added later may be another issuer's, which must never see these tokens).
        return "provider_removed"
    try:
        access_token = token_set.read_access_token()
        refresh_token = token_set.read_refresh_token()
    except errors.VaultKeyError:
        raise RevocationFailed("vault_key_missing") from None
    except errors.VaultUnavailable:
        raise RevocationFailed("decryption_failed") from None
    if (
        not refresh_token
        and token_set.expires_at is not None
        and token_set.expires_at <= timezone.now()
        and token_set.provider != "github"
    ):
        # Nothing alive to revoke. (A GitHub grant is still deleted: GitHub finds it by an expired token.)
        return "expired"
    try:
        backend = load_backend(load_strategy(), token_set.provider, redirect_uri=None)
    except Exception:  # the provider is no longer configured
        raise RevocationFailed("backend_missing") from None
    try:
        if isinstance(backend, GithubOAuth2):
            return _revoke_github(backend, access_token)
        if isinstance(backend, BaseGoogleOAuth2API):
            return _revoke_google(backend, refresh_token or access_token, token_set.uid)
        if isinstance(backend, OpenIdConnectAuth):
            return revoke_rfc7009(
                backend, refresh_token=refresh_token, access_token=access_token, uid=token_set.uid
            )
    except SocialAuthBaseException as error:
        code = _failure_code(error)
        raise RevocationFailed(code) from None
    return "unsupported"


def _failure_code(error: SocialAuthBaseException) -> str:
    if isinstance(error, AuthConfigurationError) or error.status_code == 401:
        return "client_rejected"
    if error.status_code:
        return f"http_{error.status_code}"
    return error.code


def _revoke_google(backend, token: str, uid: str) -> str:
    url = backend.revoke_token_url(token, uid)
    try:
        backend.request(url, method="POST", data={"token": token}, stage="disconnect")
    except SocialAuthBaseException as error:
        if str(error.provider_code or "") in ("invalid_token", "invalid_grant"):
            return "already_invalid"
        raise
    return "revoked"


def _revoke_github(backend, access_token: str) -> str:
    client_id, client_secret = backend.get_key_and_secret()
    api_url = backend.api_url()
    url = urljoin(api_url if api_url.endswith("/") else api_url + "/", f"applications/{client_id}/grant")
    try:
        backend.request(
            url,
            method="DELETE",
            auth=(client_id, client_secret),
            json={"access_token": access_token},
            headers={"Accept": "application/vnd.github+json"},
            stage="disconnect",
        )
    except SocialAuthBaseException as error:
        if error.status_code == 404:
            # GitHub answers 404 for a token (or grant) it no longer knows.
            return "already_invalid"
        raise
    return "revoked"


def revoke_rfc7009(backend, *, refresh_token: str, access_token: str, uid: str) -> str:
    try:
        url = backend.revoke_token_url(None, uid)
    except SocialAuthBaseException:
        return "unsupported"  # discovery advertises no revocation_endpoint
    if not url:
        return "unsupported"
    client_id, client_secret = backend.get_key_and_secret()
    for token, hint in ((refresh_token, "refresh_token"), (access_token, "access_token")):
        if not token:
            continue
        data = {"token": token, "token_type_hint": hint}
        auth = None
        if backend.use_basic_auth():
            auth = (client_id, client_secret)
        else:
            data.update(client_id=client_id, client_secret=client_secret)
        try:
            backend.request(url, method="POST", data=data, auth=auth, stage="disconnect")
        except SocialAuthBaseException as error:
            # RFC 7009 2.2: an invalid token is not an error; an unsupported type is skipped.
            if str(error.provider_code or "") not in ("invalid_token", "unsupported_token_type"):
                raise
    return "revoked"
