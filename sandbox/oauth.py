"""The sandbox providers' protocol logic, free of HTTP: grants, one-time codes and tokens.

Views translate requests into these calls and the results into each provider's response shapes.
Errors are raised as ``GrantError`` with a provider-neutral ``reason``; the views map reasons to
Google's or GitHub's own error bodies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import AccessToken, AuthorizationCode, Grant, RefreshToken
from .providers import (
    GITHUB,
    GOOGLE,
    google_scope,
    hash_token,
    new_secret,
    normalize_provider,
    subject_for,
    token_ttl,
)

CODE_TTL_SECONDS = 600
#: What GitHub Apps answer as ``refresh_token_expires_in`` (about six months).
GITHUB_REFRESH_TTL_SECONDS = 15_897_600
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _merge(*scope_lists: list[str]) -> list[str]:
    merged: list[str] = []
    for scopes in scope_lists:
        merged.extend(s for s in scopes if s not in merged)
    return merged


class GrantError(Exception):
    """A token request the provider refuses; ``reason`` is mapped to the provider's error shape."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Consent:
    """What the person submitted on the sign-in page, plus what the authorize request asked."""

    provider: str
    client_id: str
    redirect_uri: str
    email: str
    name: str
    email_verified: bool
    scopes: list[str]
    email_public: bool = False
    include_granted_scopes: bool = False
    offline: bool = False
    force_consent: bool = False
    code_challenge: str = ""
    code_challenge_method: str = ""
    nonce: str = ""


@dataclass(frozen=True)
class Authorization:
    code: str
    scopes: list[str]


def authorize(consent: Consent) -> Authorization:
    """Record the consent on the person's live grant (or a new one) and mint a one-time code."""
    provider = normalize_provider(consent.provider)
    scopes = [google_scope(s) for s in consent.scopes] if provider == GOOGLE else list(consent.scopes)
    email = consent.email.strip()
    subject = subject_for(provider, email)
    now = timezone.now()
    with transaction.atomic():
        AuthorizationCode.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()
        grant = (
            Grant.objects.select_for_update()
            .filter(provider=provider, client_id=consent.client_id, subject=subject, revoked=False)
            .order_by("-pk")
            .first()
        )
        if grant is None:
            grant = Grant(provider=provider, client_id=consent.client_id, subject=subject)
        previously = grant.scope_list
        grant.email = email
        grant.name = consent.name.strip()
        grant.email_verified = consent.email_verified
        grant.email_public = consent.email_public
        grant.scopes = " ".join(_merge(previously, scopes))
        grant.save()
        # GitHub's token for an OAuth app carries every scope the person ever granted that app;
        # Google unions earlier grants only when asked (include_granted_scopes=true). A revoked
        # grant is never found above, so revocation starts over, as at the real providers.
        cumulative = provider == GITHUB or consent.include_granted_scopes
        token_scopes = _merge(previously, scopes) if cumulative else scopes
        if provider == GOOGLE:
            # Google sends a refresh token for offline access on first consent, and again only
            # when consent is forced (prompt=consent).
            has_refresh = grant.refresh_tokens.filter(rotated_at__isnull=True).exists()
            issue_refresh = consent.offline and (consent.force_consent or not has_refresh)
        else:
            issue_refresh = True
        code = new_secret(provider, "code")
        AuthorizationCode.objects.create(
            code_hash=hash_token(code),
            grant=grant,
            redirect_uri=consent.redirect_uri,
            scopes=" ".join(token_scopes),
            code_challenge=consent.code_challenge,
            code_challenge_method=consent.code_challenge_method,
            nonce=consent.nonce,
            issue_refresh_token=issue_refresh,
            expires_at=now + timedelta(seconds=CODE_TTL_SECONDS),
        )
    return Authorization(code=code, scopes=token_scopes)


@dataclass(frozen=True)
class IssuedTokens:
    grant: Grant
    access_token: str
    expires_in: int
    scopes: list[str]
    refresh_token: str | None = None
    refresh_expires_in: int | None = None
    nonce: str = ""


def _issue(grant: Grant, scopes: list[str], *, with_refresh: bool, nonce: str = "") -> IssuedTokens:
    now = timezone.now()
    ttl = token_ttl()
    access = new_secret(grant.provider, "access")
    AccessToken.objects.create(
        token_hash=hash_token(access),
        grant=grant,
        scopes=" ".join(scopes),
        expires_at=now + timedelta(seconds=ttl),
    )
    refresh = None
    refresh_ttl = GITHUB_REFRESH_TTL_SECONDS if grant.provider == GITHUB else None
    if with_refresh:
        refresh = new_secret(grant.provider, "refresh")
        RefreshToken.objects.create(
            token_hash=hash_token(refresh),
            grant=grant,
            scopes=" ".join(scopes),
            expires_at=now + timedelta(seconds=refresh_ttl) if refresh_ttl else None,
        )
    return IssuedTokens(
        grant=grant,
        access_token=access,
        expires_in=ttl,
        scopes=scopes,
        refresh_token=refresh,
        refresh_expires_in=refresh_ttl if refresh else None,
        nonce=nonce,
    )


def _pkce_ok(code: AuthorizationCode, verifier: str | None) -> str | None:
    """None when the code's PKCE challenge is met, else the refusal reason."""
    if not code.code_challenge:
        return None
    if not verifier:
        return "pkce_missing"
    if not _PKCE_VERIFIER.match(verifier):
        return "pkce_mismatch"
    if code.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return None if hmac.compare_digest(computed, code.code_challenge) else "pkce_mismatch"


def exchange_code(
    provider: str, *, client_id: str, code: str, redirect_uri: str | None, code_verifier: str | None
) -> IssuedTokens:
    """Redeem a one-time code. A replayed code revokes its grant (RFC 6749 section 4.1.2)."""
    provider = normalize_provider(provider)
    now = timezone.now()
    row = (
        AuthorizationCode.objects.select_related("grant")
        .filter(code_hash=hash_token(code or ""), grant__provider=provider)
        .first()
    )
    if row is None or row.grant.client_id != client_id:
        raise GrantError("bad_code")
    if row.expires_at <= now:
        raise GrantError("code_expired")
    # The claim commits on its own: a code is burnt by any attempt, even one refused below.
    if not AuthorizationCode.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
        revoke_grant(row.grant)
        raise GrantError("code_reused")
    if row.grant.revoked:
        raise GrantError("bad_code")
    # GitHub lets the client leave redirect_uri out of the token request; Google doesn't.
    if redirect_uri is None and provider == GOOGLE:
        raise GrantError("redirect_mismatch")
    if redirect_uri is not None and redirect_uri != row.redirect_uri:
        raise GrantError("redirect_mismatch")
    if reason := _pkce_ok(row, code_verifier):
        raise GrantError(reason)
    with transaction.atomic():
        return _issue(row.grant, row.scopes.split(), with_refresh=row.issue_refresh_token, nonce=row.nonce)


def refresh(provider: str, *, client_id: str, refresh_token: str, scope: str | None = None) -> IssuedTokens:
    """Serve a refresh grant: Google keeps the refresh token, GitHub rotates it (the old one dies).

    Google takes a ``scope`` naming a subset of the grant and answers a token with only those
    (a scope outside the grant is ``invalid_scope``); GitHub has no such parameter.
    """
    provider = normalize_provider(provider)
    now = timezone.now()
    with transaction.atomic():
        row = active_refresh_token(provider, refresh_token)
        if row is None or row.grant.client_id != client_id:
            raise GrantError("bad_refresh")
        if provider == GOOGLE:
            granted = row.scopes.split()
            if scope is None or not scope.split():
                return _issue(row.grant, granted, with_refresh=False)
            narrowed = _merge([google_scope(s) for s in scope.split()])
            if any(s not in granted for s in narrowed):
                raise GrantError("invalid_scope")
            return _issue(row.grant, narrowed, with_refresh=False)
        # Claim the old token with a conditional update so two concurrent refreshes cannot both
        # succeed, exactly as GitHub lets only the first use of a refresh token through.
        claimed = RefreshToken.objects.filter(pk=row.pk, rotated_at__isnull=True).update(rotated_at=now)
        if not claimed:
            raise GrantError("bad_refresh")
        return _issue(row.grant, row.scopes.split(), with_refresh=True)


def active_access_token(
    provider: str, token: str | None, *, allow_expired: bool = False
) -> AccessToken | None:
    """The access token's row when it is live (not expired, grant not revoked)."""
    if not token:
        return None
    row = (
        AccessToken.objects.select_related("grant")
        .filter(
            token_hash=hash_token(token), grant__provider=normalize_provider(provider), grant__revoked=False
        )
        .first()
    )
    if row is None or (not allow_expired and row.expires_at <= timezone.now()):
        return None
    return row


def active_refresh_token(provider: str, token: str | None) -> RefreshToken | None:
    """The refresh token's row when it can still be used."""
    if not token:
        return None
    row = (
        RefreshToken.objects.select_related("grant")
        .filter(
            token_hash=hash_token(token),
            grant__provider=normalize_provider(provider),
            grant__revoked=False,
            rotated_at__isnull=True,
        )
        .first()
    )
    if row is None or (row.expires_at is not None and row.expires_at <= timezone.now()):
        return None
    return row


def revoke_grant(grant: Grant) -> None:
    """Revoke a whole grant: every access and refresh token issued under it stops working."""
    Grant.objects.filter(pk=grant.pk, revoked=False).update(revoked=True, revoked_at=timezone.now())
