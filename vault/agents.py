"""Agent keys: create (shown once), authenticate, limit, revoke; and the record of what agents got.

The agents page, the admin, the API and the merge all call these functions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.locking import InactiveProfile, lock_active_profile
from accounts.models import User
from accounts.notifications import person_text, send_notice
from accounts.providers import holds_tokens, provider_title
from accounts.scopes import MAX_SCOPES, SCOPE_NAME_RULE, is_scope_token
from activity import recording
from activity.models import Activity

from . import errors, hotpath, keyformat, ratelimit, staged_records
from . import scopes as scope_rules
from .activity_kinds import VaultKind
from .models import AgentKey

EXPIRY_CHOICES_DAYS = (1, 7, 30, 90, 365)
MAX_KEYS_PER_USER = 50


class InvalidKey(errors.TokenVaultError):
    """No usable key: missing, malformed, unknown, revoked, expired, or its user is gone."""

    code = "invalid_token"
    default_message = "The agent key is missing, malformed, expired or revoked."


class AccessDenied(errors.TokenVaultError):
    """The key is fine but was not allowed this provider or these scopes."""

    code = "access_denied"
    default_message = "This agent key is not allowed to do that."


class AgentKeyError(Exception):
    """A person's request about their keys was refused; ``str()`` says why."""


def create_agent_key(
    *,
    user: User,
    name: str,
    providers: list[str],
    scopes: dict[str, list[str]] | None = None,
    expires_in_days: int = 30,
    whole_grant: bool = False,
    request: HttpRequest | None = None,
) -> tuple[AgentKey, str]:
    """Make a key; returns the row and the key itself, which is never available again.

    ``whole_grant``: the person allows the key a token with everything the account granted, even
    beyond its scope limits (otherwise such a token is narrowed, or refused where the provider
    cannot narrow it)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise AgentKeyError("Give the agent a name of 1 to 100 characters.")
    providers = list(dict.fromkeys(p for p in providers if p))
    if not providers:
        raise AgentKeyError("Pick at least one provider the agent may use.")
    unknown = [p for p in providers if not holds_tokens(p)]
    if unknown:
        raise AgentKeyError(f"Unknown provider: {unknown[0][:40]}.")
    if expires_in_days not in EXPIRY_CHOICES_DAYS:
        raise AgentKeyError(f"Pick an expiry of {', '.join(map(str, EXPIRY_CHOICES_DAYS))} days.")
    if any(not is_scope_token(s) for values in (scopes or {}).values() for s in values):
        raise AgentKeyError(f"Scope names are {SCOPE_NAME_RULE}.")
    allowed_scopes = {
        provider: scope_rules.normalise_requested(values)[:MAX_SCOPES]
        for provider, values in (scopes or {}).items()
        if provider in providers and values
    }
    key = keyformat.new_key()
    with transaction.atomic():
        try:
            # Lock the profile (the lock order's first step) and re-check it: a key must never be
            # made for a profile a merge retired meanwhile (issue 20.3).
            lock_active_profile(user.pk)
        except InactiveProfile:
            raise AgentKeyError(
                "This profile was merged into another one or closed; sign in again."
            ) from None
        if AgentKey.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_KEYS_PER_USER:
            raise AgentKeyError(f"You already have {MAX_KEYS_PER_USER} keys; revoke some first.")
        row = AgentKey.objects.create(
            user=user,
            name=name,
            key_hash=keyformat.key_hash(key),
            hint=keyformat.display_hint(key),
            providers=providers,
            scopes=allowed_scopes,
            whole_grant=bool(whole_grant) and bool(allowed_scopes),
            expires_at=timezone.now() + timedelta(days=expires_in_days),
        )
        recording.record(
            kind=VaultKind.AGENT_KEY_CREATED,
            user=user,
            request=request,
            message=f"Created agent key {name!r} ({row.hint}) for "
            f"{', '.join(provider_title(p) for p in providers)}, expires in {expires_in_days} days"
            + ("; it may receive the whole grant" if row.whole_grant else ""),
            data={"agent_key": row.pk},
        )
        transaction.on_commit(lambda: _notify_created(user=user, key=row))
    return row, key


def _notify_created(*, user: User, key: AgentKey) -> None:
    send_notice(
        user=user,
        # The key's name is the person's text: never in a subject (it comes from our real sender).
        subject="A new agent key was created on your profile",
        template="email/agent_key_created.txt",
        context={
            "key": key,
            "key_name": person_text(key.name),
            "providers": ", ".join(provider_title(p) for p in key.providers),
        },
    )


def revoke_agent_key(
    *, user: User, key_id: int | str, reason: str = "revoked by you", request: HttpRequest | None = None
) -> AgentKey:
    """Revoke at once; someone else's key id is answered like an unknown one."""
    with transaction.atomic():
        try:
            row = AgentKey.objects.select_for_update().get(pk=int(key_id), user=user)
        except (AgentKey.DoesNotExist, ValueError, TypeError):
            raise AgentKeyError("That agent key was not found.") from None
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
            row.revoked_reason = reason[:200]
            row.save(update_fields=["revoked_at", "revoked_reason"])
            recording.record(
                kind=VaultKind.AGENT_KEY_REVOKED,
                user=user,
                request=request,
                message=f"Revoked agent key {row.name!r} ({row.hint}): {reason}",
                data={"agent_key": row.pk},
            )
    return row


def own_key(*, user: User, key_id: int | str) -> AgentKey | None:
    """The person's own key by id; someone else's is None, like an unknown one."""
    try:
        return AgentKey.objects.filter(pk=int(key_id), user=user).first()
    except (ValueError, TypeError):
        return None


def rename_agent_key(*, user: User, key_id: int | str, name: str) -> AgentKey:
    """Give a key a new name (only the person's own); its secret, limits and history stay."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AgentKeyError("Give the key a name of 1 to 100 characters.")
    with transaction.atomic():
        try:
            row = AgentKey.objects.select_for_update().get(pk=int(key_id), user=user)
        except (AgentKey.DoesNotExist, ValueError, TypeError):
            raise AgentKeyError("That agent key was not found.") from None
        previous, row.name = row.name, name
        row.save(update_fields=["name"])
        recording.record(
            kind=VaultKind.AGENT_KEY_RENAMED,
            user=user,
            agent_key_id=row.pk,
            message=f"Agent key “{previous}” renamed to “{name}”",
            data={"from": previous, "to": name},
        )
    return row


def grants_of(*, user: User, key: AgentKey):
    """Every token this key got, latest first (a queryset: the history page paginates it)."""
    return Activity.objects.filter(user=user, kind=VaultKind.TOKEN_ISSUED, agent_key_id=key.pk).order_by(
        "-created_at", "-id"
    )


def revoke_all_keys(*, user: User, reason: str) -> int:
    """Revoke every active key of ``user`` (deactivation, merge). Returns how many."""
    now = timezone.now()
    count = AgentKey.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason[:200]
    )
    if count:
        recording.record(
            kind=VaultKind.AGENT_KEY_REVOKED, user=user, message=f"Revoked {count} agent key(s): {reason}"
        )
    return count


def check_usable(key: AgentKey | None) -> AgentKey:
    """``key`` if it may be used now: not revoked or expired, its user active and not merged away."""
    if key is None or not key.is_active or not key.user.is_live:
        raise InvalidKey()
    return key


def authenticate_agent_key(raw_key: str | None) -> AgentKey:
    """The active key for ``raw_key``. Malformed keys are refused before any database query.

    One prepared query for the key and its user (the hash is unique).
    """
    if not raw_key or not keyformat.is_well_formed(raw_key):
        raise InvalidKey()
    return check_usable(hotpath.find_agent_key(key_hash=keyformat.key_hash(raw_key)))


def authenticate_request(raw_key: str | None, *, ip_address: str | None) -> AgentKey:
    """An agent API request's key, counted against its limits (``RateLimited`` past them).

    A refused key counts against its address, and past the address's limit refused keys are
    answered 429; a valid key is admitted whatever its address's failures (vault/ratelimit.py).
    """
    try:
        key = authenticate_agent_key(raw_key)
    except InvalidKey:
        refuse_key(ip_address=ip_address)
    admit(key, ip_address=ip_address)
    return key


def refuse_key(*, ip_address: str | None) -> NoReturn:
    """Count a refused key against its address, then raise ``InvalidKey`` (or ``RateLimited``)."""
    verdict = ratelimit.note_failure(ip_address=ip_address)
    if not verdict.allowed:
        raise errors.RateLimited(
            "Too many failed key attempts from this address.", retry_after=verdict.retry_after
        )
    raise InvalidKey()


def admit(key: AgentKey, *, ip_address: str | None) -> None:
    """Count an authenticated request against the key's and the user's limits, and note its use."""
    ratelimit.admit(key_id=key.pk, user_id=key.user_id, ip_address=ip_address)
    note_use(key, ip_address=ip_address)


def scope_limit(key: AgentKey, *, connection: str) -> scope_rules.ScopeLimit:
    """What a token for ``key`` may carry: the key's scopes for ``connection`` (none: anything),
    and whether its person allowed it the whole grant (``tokens.enforce_scope_limit``)."""
    return scope_rules.ScopeLimit(
        scopes=tuple((key.scopes or {}).get(connection) or ()), whole_grant=bool(key.whole_grant)
    )


def check_allowed(key: AgentKey, *, connection: str, scopes: list[str]) -> None:
    """Refuse a provider or scope the user did not allow this key."""
    if connection not in key.providers:
        raise AccessDenied(
            f"This agent key may not use the {provider_title(connection)} connection.",
            connection=connection,
        )
    allowed = key.scopes.get(connection) or []
    if allowed:
        extra = [s for s in scopes if s not in allowed]
        if extra:
            raise AccessDenied(
                f"This agent key may not ask for scope {extra[0][:60]!r}.", connection=connection
            )


def note_use(key: AgentKey, *, ip_address: str | None) -> None:
    """Last use, written at most once a minute per key so hot keys don't write on every call."""
    now = timezone.now()
    if (
        key.last_used_at is None
        or now - key.last_used_at > timedelta(seconds=60)
        or (key.last_used_ip != ip_address)
    ):
        AgentKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip_address)


def record_token_issued(
    *,
    key: AgentKey,
    connection: str,
    identity_id: int,
    account_name: str,
    scopes: list[str],
    ip_address: str | None,
    admit: bool = False,
) -> Activity | None:
    """Every token handed to an agent is recorded (one row: this is on the token's hot path).
    Returns the row, or None when the record was staged in Redis (it reaches the table shortly).

    ``admit``: count the request against the key's and the user's limits here too (``RateLimited``
    past them, and then nothing is recorded). With Redis the count and the record are one round
    trip: the record is staged next to the counters and moved into the table by the site
    (``vault.staged_records``). Otherwise the request is counted, then the record inserted.
    """
    values = recording.record_values(
        kind=VaultKind.TOKEN_ISSUED,
        user=key.user,
        provider=connection,
        ip_address=ip_address,
        identity_id=identity_id,
        agent_key_id=key.pk,
        message=f"Agent {key.name!r} got a {provider_title(connection)} token"
        + (f" for {account_name}" if account_name else ""),
        data={"agent": key.name, "account_name": account_name, "scopes": list(scopes)},
    )
    if admit:
        staged = ratelimit.admit_and_stage(
            key_id=key.pk,
            user_id=key.user_id,
            stream=staged_records.STREAM,
            record=hotpath.staged_token_issued(values),
        )
        if not staged:
            ratelimit.admit(key_id=key.pk, user_id=key.user_id, ip_address=ip_address)
        note_use(key, ip_address=ip_address)
        if staged:
            staged_records.start_drainer()
            return None
    entry = Activity(**values)
    # On the hot path: committed without waiting for the disk (hotpath.insert_token_issued).
    hotpath.insert_token_issued(entry)
    return entry


def keys_with_recent_grants(user: User, *, per_key: int = 10) -> list[tuple[AgentKey, list[Activity]]]:
    """The user's keys, newest first, each with the latest tokens it got (for the agents page)."""
    keys = list(AgentKey.objects.filter(user=user))
    grants = Activity.objects.filter(
        user=user, kind=VaultKind.TOKEN_ISSUED, agent_key_id__in=[k.pk for k in keys]
    ).order_by("-created_at", "-id")[: per_key * 20]
    by_key: dict[int, list[Activity]] = {}
    for grant in grants:
        bucket = by_key.setdefault(grant.agent_key_id, [])
        if len(bucket) < per_key:
            bucket.append(grant)
    return [(key, by_key.get(key.pk, [])) for key in keys]
