"""The toolkit's request validator, with the site's rules: audiences, ID token keys and claims.

- Every access token is bound to one audience (RFC 8707): the ``resource`` asked for, which must be
  the site itself or a registered resource server, or else the site's own (``SITE_URL``).
- Every application's ID tokens are signed RS256 with the site's key from the environment (the
  toolkit would refuse applications registered without an algorithm, such as self-registered ones).
- Claims: ``sub`` is the profile id; ``email`` and ``name`` with their scopes.
- Authorization codes are stored as their SHA-256 (``code_digest``), like every other token of the
  site: the toolkit keeps ``Grant.code`` as given, so each of its methods that finds a grant by code
  is handed the digest instead (``tests/test_authserver_hardening.py`` checks none is missed).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from oauth2_provider.models import AbstractApplication
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from .scopes import resource_of


def is_known_audience(uri: str) -> bool:
    """The site itself, or a resource server staff registered (``ApplicationPolicy.resource``)."""
    return uri.rstrip("/") == settings.SITE_URL or resource_of(uri) is not None


def code_digest(code: str) -> str:
    """What ``Grant.code`` holds: a leaked database row must not redeem the code it stands for."""
    return hashlib.sha256((code or "").encode()).hexdigest()


class SiteValidator(OAuth2Validator):
    oidc_claim_scope = {"sub": "openid", "email": "email", "name": "profile"}

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        # A copy: oauthlib sends the caller's dict (the plaintext code) on to the redirect.
        hashed = {**code, "code": code_digest(code["code"])}
        return super().save_authorization_code(client_id, hashed, request, *args, **kwargs)

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        return super().validate_code(client_id, code_digest(code), client, request, *args, **kwargs)

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, *args, **kwargs):
        return super().confirm_redirect_uri(
            client_id, code_digest(code), redirect_uri, client, *args, **kwargs
        )

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        return super().invalidate_authorization_code(client_id, code_digest(code), request, *args, **kwargs)

    def get_code_challenge(self, code, request):
        return super().get_code_challenge(code_digest(code), request)

    def get_code_challenge_method(self, code, request):
        return super().get_code_challenge_method(code_digest(code), request)

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        return super().get_authorization_code_scopes(client_id, code_digest(code), redirect_uri, request)

    def get_authorization_code_nonce(self, client_id, code, redirect_uri, request):
        return super().get_authorization_code_nonce(client_id, code_digest(code), redirect_uri, request)

    def _validate_resource_uris(self, request, resources):
        super()._validate_resource_uris(request, resources)
        for uri in resources:
            if not is_known_audience(uri):
                raise errors.CustomOAuth2Error(
                    error="invalid_target",
                    description=f"The resource {uri!r} is not one this server issues tokens for.",
                    request=request,
                )

    def _check_and_set_request_resource(self, request):
        # The toolkit narrows the resource against the grant it finds by ``request.code``.
        code = request.code
        if code:
            request.code = code_digest(code)
        try:
            super()._check_and_set_request_resource(request)
        finally:
            request.code = code
        if not request.resource:
            # One audience always: a token asked for no resource is the site's own.
            request.resource = [settings.SITE_URL]

    def finalize_id_token(self, id_token, token, token_handler, request):
        if (
            request.client.algorithm != AbstractApplication.RS256_ALGORITHM
            and oauth2_settings.OIDC_RSA_PRIVATE_KEY
        ):
            request.client.algorithm = AbstractApplication.RS256_ALGORITHM  # in memory, for signing
        return super().finalize_id_token(id_token, token, token_handler, request)

    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email or "",
            "name": user.get_full_name() or user.get_username(),
        }
