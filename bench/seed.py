"""Seed the benchmark database: users, identities and token sets, encrypted by the vault's own code.

Rows go in with ``bulk_create`` in batches of ``BATCH`` (one transaction each). Token set ids are
taken from the table's sequence first, because every ciphertext is bound to its row id; the values
are then encrypted with ``TokenSet.set_tokens`` (the vault's code, real AES-256-GCM) and inserted
with the row. Each identity also carries a fake plaintext token in ``extra_data``: that is what the
benchmark's baseline view reads, as a site without a vault would. The tokens are random strings
that no provider ever issued, in a database the benchmark drops when it is done.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.models import IdentityDetails, User
from vault.keys import get_keyring
from vault.models import TokenSet

BATCH = 2000
#: Seeded access tokens stay fresh for the whole run.
FRESH_FOR = timedelta(hours=6)
GITHUB_SCOPES = ["read:user", "user:email"]
GOOGLE_SCOPES = ["openid", "email", "profile"]


def _fake(prefix: str, size: int) -> str:
    return prefix + secrets.token_urlsafe(size)


def _reserve_ids(model, count: int) -> list[int]:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
        )
        return [row[0] for row in cursor.fetchall()]


def _identity_rows(user: User, provider: str, uid: str, now, *, default: bool, created_profile: bool):
    access = _fake("ghu_" if provider == "github" else "ya29.", 27)
    identity = UserSocialAuth(
        user=user,
        provider=provider,
        uid=uid,
        extra_data={
            # Only the baseline view reads these (see the module docstring).
            "access_token": access,
            "token_type": "bearer",
            "auth_time": int(now.timestamp()),
            "expires": int(FRESH_FOR.total_seconds()),
            "scope": " ".join(GITHUB_SCOPES if provider == "github" else GOOGLE_SCOPES),
        },
    )
    details = IdentityDetails(
        account_name=f"{user.username}-{provider}",
        email=user.email,
        email_verified=True,
        is_default=default,
        created_profile=created_profile,
        last_login_at=now,
    )
    return identity, details, access


def _insert(entries, now) -> None:
    """``entries``: (identity, details, access token) triples whose users are saved."""
    keyring = get_keyring()
    UserSocialAuth.objects.bulk_create([identity for identity, _, _ in entries])
    details = []
    for identity, detail, _ in entries:
        detail.identity = identity
        details.append(detail)
    IdentityDetails.objects.bulk_create(details)
    ids = _reserve_ids(TokenSet, len(entries))
    token_sets = []
    for token_set_id, (identity, _, access) in zip(ids, entries, strict=True):
        token_set = TokenSet(
            id=token_set_id,
            identity=identity,
            owner_id=identity.user_id,
            provider=identity.provider,
            uid=identity.uid,
            token_type="bearer",
            scopes=list(GITHUB_SCOPES if identity.provider == "github" else GOOGLE_SCOPES),
            scopes_reported=identity.provider != "github",
            expires_at=now + FRESH_FOR,
            refreshed_at=now,
            version=1,
        )
        token_set.set_tokens(access_token=access, refresh_token=_fake("ghr_", 57), keyring=keyring)
        token_sets.append(token_set)
    TokenSet.objects.bulk_create(token_sets)


def seed_users(start: int, count: int, progress=None) -> float:
    """Users ``bench-<start>`` .. ``bench-<start+count-1>``, each with one GitHub identity and token set."""
    started = time.monotonic()
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        now = timezone.now()
        with transaction.atomic():
            users = User.objects.bulk_create(
                [
                    User(
                        username=f"bench-{index}",
                        email=f"bench-{index}@bench.example",
                        name=f"Bench User {index}",
                        password="!bench-unusable",
                    )
                    for index in range(start + done, start + done + size)
                ]
            )
            entries = [
                _identity_rows(
                    user,
                    "github",
                    str(1_000_000_000 + start + done + i),
                    now,
                    default=True,
                    created_profile=True,
                )
                for i, user in enumerate(users)
            ]
            _insert(entries, now)
        done += size
        if progress:
            progress(done, count)
    return time.monotonic() - started


def user_with_identities(label: str, count: int) -> User:
    """One user with ``count`` identities (GitHub and Google alternately), each with a token set."""
    now = timezone.now()
    with transaction.atomic():
        user = User.objects.create(
            username=f"bench-{label}", email=f"{label}@bench.example", name=f"Bench {label}", password="!x"
        )
        entries = []
        for i in range(count):
            provider = "github" if i % 2 == 0 else "google-oauth2"
            uid = f"{2_000_000_000 + user.pk * 100 + i}"
            entries.append(_identity_rows(user, provider, uid, now, default=i < 2, created_profile=i == 0))
        _insert(entries, now)
    return user


@dataclass
class RealGithub:
    """A user whose GitHub token set holds tokens the sandbox really issued (refresh works)."""

    user: User
    token_set_id: int


def user_with_sandbox_github(label: str) -> RealGithub:
    """Run the sandbox's own authorize and code exchange, then store the answer with ``capture_tokens``."""
    from sandbox import oauth, providers
    from vault.capture import capture_tokens

    email = f"{label}@bench.example"
    consent = oauth.Consent(
        provider="github",
        client_id=settings.SOCIAL_AUTH_GITHUB_KEY,
        redirect_uri=f"{settings.SITE_URL}/complete/github/",
        email=email,
        name=f"Bench {label}",
        email_verified=True,
        scopes=list(GITHUB_SCOPES),
    )
    authorization = oauth.authorize(consent)
    issued = oauth.exchange_code(
        "github",
        client_id=settings.SOCIAL_AUTH_GITHUB_KEY,
        code=authorization.code,
        redirect_uri=consent.redirect_uri,
        code_verifier=None,
    )
    with transaction.atomic():
        user = User.objects.create(
            username=f"bench-{label}", email=email, name=f"Bench {label}", password="!x"
        )
        identity = UserSocialAuth.objects.create(user=user, provider="github", uid=issued.grant.subject)
        IdentityDetails.objects.create(
            identity=identity,
            account_name=providers.github_login(email),
            email=email,
            email_verified=True,
            is_default=True,
            created_profile=True,
        )
    token_set = capture_tokens(
        identity=identity,
        response={
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires_in": issued.expires_in,
            "token_type": "bearer",
            "scope": "",
        },
        requested_scopes=GITHUB_SCOPES,
    )
    return RealGithub(user=user, token_set_id=token_set.pk)


def expire(token_set_id: int) -> None:
    TokenSet.objects.filter(pk=token_set_id).update(expires_at=timezone.now() - timedelta(seconds=5))


def seed_agent_keys() -> int:
    """One agent key for every seeded user that has none, by one SQL statement: the key table at
    the size a site of N people would have (the load's own keys are made with the vault's code).
    The hashes are random: nobody holds these keys. Returns how many were made."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO vault_agentkey (user_id, name, key_hash, hint, providers, scopes, whole_grant, "
            "created_at, expires_at, revoked_reason) "
            "SELECT u.id, 'bench', md5(random()::text || u.id::text) || md5(u.id::text || random()::text), "
            "'bench', '[\"github\"]'::jsonb, '{}'::jsonb, false, now(), now() + interval '30 days', '' "
            "FROM accounts_user u WHERE u.username ~ '^bench-[0-9]+$' "
            "AND NOT EXISTS (SELECT 1 FROM vault_agentkey k WHERE k.user_id = u.id)"
        )
        return cursor.rowcount
