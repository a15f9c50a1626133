"""Revoking an identity's tokens at the provider when the identity goes away.

Removing an identity first *detaches* its token set (same transaction as the removal): the row
stays, with ``identity`` NULL and status ``revoke_pending``, still encrypted and bound to itself.
After the removal commits, one attempt is made to revoke at the provider; success erases the row,
failure is recorded as activity and left for ``vault_refresh`` to retry with backoff. The removal
itself never waits for or fails because of the provider. Tokens no identity keeps (a refused
flow's, ``TokenSet.create_detached``) take the same road from their first attempt on.

The provider calls themselves (and each provider's rules) are ``vault.revokers``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Literal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_django.models import UserSocialAuth

from accounts.models import User
from accounts.providers import provider_title
from activity import recording

from .activity_kinds import VaultKind
from .locking import lock_identity_chain, lock_token_set_chain
from .models import TokenSet
from .querysets import KEY_FAULT_CODES
from .revokers import RevocationFailed, revoke

logger = logging.getLogger(__name__)

#: Failed attempts (provider errors) before giving up on a revocation. The pauses between them
#: double from ``BACKOFF_BASE_SECONDS``: 1, 2, 4 ... 256 minutes, 30,660 s (about 8.5 hours) from
#: the first attempt to the last (``give_up_after_seconds()``; docs/deploy.md says the same).
MAX_ATTEMPTS = 10
BACKOFF_BASE_SECONDS = 60
BACKOFF_MAX_SECONDS = 12 * 3600
ATTEMPT_LEASE_SECONDS = 120
#: A revocation that hit one of ``KEY_FAULT_CODES`` (this site cannot read its own tokens) never
#: counts towards giving up (issue 20.4): the row waits for the right key and is retried at most
#: this often.
KEY_FAULT_RETRY_SECONDS = 3600


def backoff_seconds(attempts: int) -> int:
    """The pause after the ``attempts``-th failed attempt."""
    return min(BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), BACKOFF_MAX_SECONDS)


def give_up_after_seconds() -> int:
    """How long after the first failed attempt the last one runs (the sum of the pauses)."""
    return sum(backoff_seconds(attempts) for attempts in range(1, MAX_ATTEMPTS))


Result = Literal["revoked", "failed", "gave_up", "key_fault", "busy", "missing"]


def detach_for_revocation(
    *, identity: UserSocialAuth, actor: User | None = None, attempt_after_commit: bool = True
) -> TokenSet | None:
    """Move ``identity``'s tokens to a pending revocation, and try to revoke after commit.

    Runs inside the caller's transaction (the disconnect pipeline's). On PostgreSQL it waits for a
    refresh in flight on the same row, so the freshest tokens are the ones revoked.
    """
    with transaction.atomic():
        # The one lock order: profile, identity, token set. Unlink and merge hold the first two
        # already; a user deleted in the admin (CASCADE, through ``pre_delete``) takes them here,
        # before the token set, instead of after it.
        token_set = lock_identity_chain(identity_id=identity.pk).token_set
        if token_set is None:
            return None
        token_set.detach_for_revocation()
        if attempt_after_commit:
            revoke_after_commit(token_set.pk, actor_id=actor.pk if actor is not None else None)
    logger.info(
        "Token set %s detached from %s identity %s for revocation",
        token_set.pk,
        token_set.provider,
        identity.pk,
    )
    return token_set


def revoke_after_commit(token_set_id: int, *, actor_id: int | None = None) -> None:
    transaction.on_commit(partial(_attempt_quietly, token_set_id, actor_id), robust=True)


def _attempt_quietly(token_set_id: int, actor_id: int | None) -> None:
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    try:
        attempt_revocation(token_set_id=token_set_id, actor=actor)
    except Exception as error:  # the removal committed already; vault_refresh retries
        logger.error(
            "Revocation attempt for token set %s failed unexpectedly (%s)", token_set_id, type(error).__name__
        )


@sensitive_variables()
def attempt_revocation(
    *, token_set_id: int, actor: User | None = None, even_if_linked: bool = False
) -> Result:
    """One attempt to revoke a detached token set's tokens; erases the row when done.

    When the same provider account is linked (again) the grant is left alone, since Google's and
    GitHub's revocations end the whole grant that link shares; ``even_if_linked`` (staff "Revoke")
    revokes anyway.
    """
    now = timezone.now()
    lease = uuid.uuid4().hex
    with transaction.atomic():
        claimed = (
            TokenSet.objects.waiting_for_revocation()
            .filter(pk=token_set_id)
            .filter(Q(lease_id="") | Q(lease_expires_at__lt=now))
            .update(lease_id=lease, lease_expires_at=now + timedelta(seconds=ATTEMPT_LEASE_SECONDS))
        )
    if not claimed:
        exists = TokenSet.objects.waiting_for_revocation().filter(pk=token_set_id).exists()
        return "busy" if exists else "missing"
    token_set = TokenSet.objects.get(pk=token_set_id)
    owner = User.objects.filter(pk=token_set.owner_id).first()
    title = provider_title(token_set.provider)
    try:
        outcome = revoke(token_set, even_if_linked=even_if_linked)
    except RevocationFailed as failure:
        return _record_failure(token_set, lease, failure.code, owner=owner, actor=actor)
    if not _erase(token_set, lease):
        return _taken_over(token_set)
    messages = {
        "revoked": f"Revoked the {title} account's tokens at {title}",
        "already_invalid": f"The {title} account's tokens were already invalid at {title}",
        "expired": f"The {title} account's tokens had expired; nothing was left to revoke",
        "unsupported": f"{title} offers no way to revoke tokens; erased here, they expire on their own",
        "relinked": f"Kept the {title} authorization: the same {title} account is linked again",
        "provider_removed": f"{title} is no longer set up on this site, so its tokens could not be "
        "revoked there; they were erased here and expire on their own",
    }
    done = outcome in ("revoked", "already_invalid", "expired")
    kind = VaultKind.REVOKED if done else VaultKind.REVOKE_FAILED
    recording.record(
        kind=kind,
        user=owner,
        actor=actor,
        provider=token_set.provider,
        uid=token_set.uid,
        message=messages[outcome],
        data={"token_set": token_set.pk, "outcome": outcome},
    )
    logger.info("Token set %s (%s): revocation %s", token_set.pk, token_set.provider, outcome)
    return "revoked"


def _record_failure(
    token_set: TokenSet, lease: str, code: str, *, owner: User | None, actor: User | None
) -> Result:
    now = timezone.now()
    if code in KEY_FAULT_CODES:
        return _record_key_fault(token_set, lease, code, now=now)
    attempts = token_set.revoke_attempts + 1
    title = provider_title(token_set.provider)
    data = {"token_set": token_set.pk, "code": code, "attempts": attempts}
    if attempts >= MAX_ATTEMPTS:
        if not _erase(token_set, lease):
            return _taken_over(token_set)
        recording.record(
            kind=VaultKind.REVOKE_FAILED,
            user=owner,
            actor=actor,
            provider=token_set.provider,
            uid=token_set.uid,
            data={**data, "gave_up": True},
            message=f"Gave up revoking the {title} account's tokens after {attempts} attempts; "
            "they were erased here",
        )
        logger.error(
            "Token set %s (%s): gave up revoking after %d attempts (%s)",
            token_set.pk,
            token_set.provider,
            attempts,
            code,
        )
        return "gave_up"
    pause = backoff_seconds(attempts)
    if not _put_back(token_set, lease, code, now=now, retry_in=pause, revoke_attempts=attempts):
        return _taken_over(token_set)
    recording.record(
        kind=VaultKind.REVOKE_FAILED,
        user=owner,
        actor=actor,
        provider=token_set.provider,
        uid=token_set.uid,
        data=data,
        message=f"Could not revoke the {title} account's tokens at {title} yet; they will be retried",
    )
    logger.warning(
        "Token set %s (%s): revocation failed (%s), attempt %d; retry in %d s",
        token_set.pk,
        token_set.provider,
        code,
        attempts,
        pause,
    )
    return "failed"


def _record_key_fault(token_set: TokenSet, lease: str, code: str, *, now) -> Result:
    """This site cannot read the tokens (wrong or missing vault key): the row is kept, the attempt
    count untouched, and it waits for the right key (reported by ``vault_status`` and the admin)."""
    if not _put_back(token_set, lease, code, now=now, retry_in=KEY_FAULT_RETRY_SECONDS):
        return _taken_over(token_set)
    logger.error(
        "Token set %s (%s): cannot revoke, its tokens do not decrypt with VAULT_KEYS (%s); kept until "
        "the right key is configured (not counted as a failed attempt)",
        token_set.pk,
        token_set.provider,
        code,
    )
    return "key_fault"


def _erase(token_set: TokenSet, lease: str) -> bool:
    """The attempt ended the row (revoked, or given up): erase it. False: not ours any more."""
    with transaction.atomic():
        erased, _ = TokenSet.objects.under_lease(token_set.pk, lease).delete()
    return bool(erased)


def _put_back(token_set: TokenSet, lease: str, code: str, *, now, retry_in: float, **changes: Any) -> bool:
    """An attempt that did not end the row: its error noted, the next attempt not before
    ``retry_in`` seconds, the lease given back (``changes`` written in the same update). False:
    not ours any more."""
    with transaction.atomic():
        return bool(
            TokenSet.objects.under_lease(token_set.pk, lease).release_lease(
                last_error_code=code[:64],
                last_error_at=now,
                retry_not_before=now + timedelta(seconds=retry_in),
                **changes,
            )
        )


def _taken_over(token_set: TokenSet) -> Result:
    """The attempt outlived its lease and another worker took the row over: that worker's attempt,
    not this one, writes and records the outcome (the person sees one record, not two)."""
    logger.warning(
        "Token set %s (%s): revocation attempt outlived its lease; another worker has the row",
        token_set.pk,
        token_set.provider,
    )
    return "busy"


@dataclass
class RevocationReport:
    due: int = 0
    revoked: int = 0
    failed: int = 0
    gave_up: int = 0
    key_fault: int = 0
    busy: int = 0


def retry_pending(*, dry_run: bool = False) -> RevocationReport:
    """Retry every pending revocation whose pause is over (``vault_refresh``)."""
    report = RevocationReport()
    now = timezone.now()
    due = TokenSet.objects.due_for_revocation(now).order_by("pk").values_list("pk", flat=True)
    for token_set_id in list(due):
        report.due += 1
        if dry_run:
            continue
        result = attempt_revocation(token_set_id=token_set_id)
        if result == "revoked":
            report.revoked += 1
        elif result == "failed":
            report.failed += 1
        elif result == "gave_up":
            report.gave_up += 1
        elif result == "key_fault":
            report.key_fault += 1
        else:
            report.busy += 1
    return report


def revoke_now(*, token_set_id: int, actor: User | None = None) -> Result:
    """Staff "Revoke": revoke at the provider now and erase the tokens; the identity stays linked
    (without tokens: its owner sees "reconnect" on the connections page)."""
    with transaction.atomic():
        # Profile, identity, token set: the one lock order (``accounts.locking``).
        locked = lock_token_set_chain(token_set_id=token_set_id)
        if locked.token_set is None:
            return "missing"
        if locked.identity is not None:
            detach_for_revocation(identity=locked.identity, actor=actor, attempt_after_commit=False)
    return attempt_revocation(token_set_id=token_set_id, actor=actor, even_if_linked=True)
