"""Who the sandbox's stand-ins are: their names, the one client each knows, and the accounts.

The same email always gives the same account (Google ``sub``, GitHub id and login), so signing in
twice with one address is the same person, as at the real providers. Secrets are shaped like the
real providers' (prefix and alphabet) so code that looks at them sees what production sees.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings

GOOGLE = "google"
GITHUB = "github"
PROVIDERS = (GOOGLE, GITHUB)
_PROVIDER_NAMES = {"google": GOOGLE, "google-oauth2": GOOGLE, "github": GITHUB}

#: Google answers the short scope names with their full URLs in token responses.
GOOGLE_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}

_BASE62 = string.ascii_letters + string.digits


def normalize_provider(provider: str) -> str:
    """Accept both the sandbox names and the social-auth backend names (``google-oauth2``)."""
    try:
        return _PROVIDER_NAMES[provider]
    except KeyError:
        raise ValueError(
            f"Unknown sandbox provider {provider!r}; use one of {', '.join(PROVIDERS)}."
        ) from None


def client_credentials(provider: str) -> tuple[str, str]:
    """The one client the stand-in knows: the site's own configured key and secret."""
    if normalize_provider(provider) == GOOGLE:
        return settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY, settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET
    return settings.SOCIAL_AUTH_GITHUB_KEY, settings.SOCIAL_AUTH_GITHUB_SECRET


def known_client(provider: str, client_id: str | None) -> bool:
    expected, _secret = client_credentials(provider)
    return bool(client_id) and bool(expected) and hmac.compare_digest(str(client_id), expected)


def client_authenticates(provider: str, client_id: str | None, client_secret: str | None) -> bool:
    _expected_id, expected_secret = client_credentials(provider)
    return (
        known_client(provider, client_id)
        and client_secret is not None
        and bool(expected_secret)
        and hmac.compare_digest(str(client_secret), expected_secret)
    )


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _email_number(email: str) -> int:
    return int.from_bytes(hashlib.sha256(normalize_email(email).encode()).digest(), "big")


def google_sub(email: str) -> str:
    """A 21-digit numeric ``sub`` like Google's, stable for an email."""
    return "1" + f"{_email_number(email) % 10**20:020d}"


def github_id(email: str) -> int:
    """An 8-digit numeric GitHub user id, stable for an email."""
    return 10_000_000 + (_email_number(email) >> 128) % 90_000_000


def github_login(email: str) -> str:
    """A GitHub-valid login from the email's local part plus a short hash, stable for an email."""
    normalized = normalize_email(email)
    local = normalized.rpartition("@")[0] or normalized
    slug = re.sub(r"[^a-z0-9]+", "-", local).strip("-")[:30] or "user"
    return f"{slug}-{hashlib.sha256(normalized.encode()).hexdigest()[:4]}"


def subject_for(provider: str, email: str) -> str:
    return google_sub(email) if normalize_provider(provider) == GOOGLE else str(github_id(email))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def new_secret(provider: str, kind: str) -> str:
    """A random secret shaped like the real provider's (prefix and alphabet)."""
    if provider == GOOGLE:
        prefix = {"code": "4/0A", "access": "ya29.", "refresh": "1//0"}[kind]
        return prefix + secrets.token_urlsafe(48)
    if kind == "code":
        return secrets.token_hex(16)
    return {"access": "ghu_", "refresh": "ghr_"}[kind] + _base62(36 if kind == "access" else 76)


def token_ttl() -> int:
    """Access-token lifetime, read at issue time so tests can change it with ``settings``."""
    return int(getattr(settings, "SANDBOX_TOKEN_TTL", 3600))


def google_scope(scope: str) -> str:
    return GOOGLE_SCOPE_ALIASES.get(scope, scope)
