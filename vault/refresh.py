"""Refresh, single-flight per token set: one provider call however many callers ask at once.

Two strategies behind ``refresh(ctx)``, chosen in ``uses_row_lock()`` and nowhere else:

* PostgreSQL (or any database with ``SELECT ... FOR UPDATE``): the token set row is locked for the
  refresh call; waiters block on the lock, then re-read and find it fresh. Works across threads,
  processes and hosts.
* SQLite: a write transaction locks the whole database, so holding one across the HTTP call would
  block every other writer, including the development sandbox answering that very call. Instead a
  short transaction claims a lease on the row (conditional on the row's ``version``), the provider
  is called with no transaction open, and the result is written only if the lease is still ours and
  the row still belongs to the same identity and owner. Waiters poll the row and re-read.

Both decide what to do with the row the same way (``_precheck``), call the provider the same way
(``vault.provider_calls``) and write the outcome the same way (``vault.outcomes``): a rotated
refresh token is committed before the new access token is returned, an ``invalid_grant`` marks
the set "reconnect required", client-credential errors are reported to staff, outages get short
bounded retries and a short pause; nothing is deleted or disabled because a provider is down.
``force_refresh`` (staff) and ``refresh_expiring`` (``vault_refresh``) are the entry points besides
``vault.access.get_access_token``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_django.models import UserSocialAuth

from accounts.issuers import configured_issuers, unusable_reason
from accounts.models import User, live_profile_filter
from accounts.providers import provider_title

from . import errors
from .locking import Locked, lock_token_set_chain
from .models import TokenSet
from .outcomes import apply_outcome, mark_reconnect_required
from .provider_calls import OUTAGE_RETRY_AFTER, Outcome, RefreshContext, call_provider, refresh_deadline
from .refresh_selection import RATE_LIMITED, RefreshReport, due_in_pages, due_token_sets, was_rate_limited
from .responses import parse_token_response
from .revocation import revoke_after_commit
from .stored import fault_error, fault_may_have_cleared, gone_error, needs_refresh, reauth_error
from .workers import run_bounded

logger = logging.getLogger(__name__)

#: How often a caller waiting for another caller's refresh (SQLite lease) re-reads the row.
LEASE_POLL_SECONDS = 0.05


@dataclass
class Verdict:
    """What to do with a token set as it is now: hand it out, refresh it, or fail."""

    kind: Literal["fresh", "refresh", "fail"]
    error: errors.TokenVaultError | None = None
    mark_reconnect: str = ""  # error code to record when the token set must be marked


def uses_row_lock() -> bool:
    return bool(connection.features.has_select_for_update)


def refresh(ctx: RefreshContext) -> tuple[TokenSet, bool]:
    """Refresh single-flight; returns the (re-read) token set and whether this call refreshed it."""
    if uses_row_lock():
        return _refresh_with_row_lock(ctx)
    return _refresh_with_lease(ctx)


def _precheck(
    token_set: TokenSet | None, ctx: RefreshContext, now: datetime, *, owned: bool | None = None
) -> Verdict:
    """What to do with the row as it is now (after the lock, or on each lease poll). ``owned`` is
    ``_still_owned(ctx)`` when the caller already knows it from the rows it locked."""
    if token_set is None or token_set.identity_id != ctx.identity_id:
        return Verdict("fail", gone_error(token_set, ctx.requested))
    if not (_still_owned(ctx) if owned is None else owned):
        return Verdict("fail", gone_error(token_set, ctx.requested))
    if not ctx.force and not needs_refresh(token_set, ctx.min_ttl, now):
        return Verdict("fresh")
    if not ctx.force and token_set.status == TokenSet.Status.RECONNECT_REQUIRED:
        return Verdict("fail", reauth_error(token_set, ctx.requested))
    if (
        not ctx.force
        and token_set.status == TokenSet.Status.VAULT_FAULT
        and not fault_may_have_cleared(token_set)
    ):
        return Verdict("fail", fault_error(token_set, ctx.requested))
    if not token_set.has_refresh_token:
        # An assumed expiry (no expires_in) is a guess: passing it proves nothing was revoked.
        if token_set.expires_at is not None and token_set.expires_at <= now and not token_set.expiry_assumed:
            return Verdict("fail", reauth_error(token_set, ctx.requested), mark_reconnect="no_refresh_token")
        if ctx.force:
            return Verdict("fail", reauth_error(token_set, ctx.requested))
        return Verdict("fresh")  # still valid; nothing can make it last longer
    if not ctx.force and token_set.retry_not_before and token_set.retry_not_before > now:
        wait = math.ceil((token_set.retry_not_before - now).total_seconds())
        return Verdict(
            "fail",
            errors.ProviderUnavailable(
                f"{provider_title(token_set.provider)} was unavailable moments ago; try again in {wait} s.",
                retry_after=wait,
                connection=token_set.provider,
            ),
        )
    return Verdict("refresh")


def _still_owned(ctx: RefreshContext) -> bool:
    """The identity is still the caller's, on an active profile (a merged-away or deactivated
    profile's tokens are never refreshed: issue 20.3, cron kept refreshing them)."""
    return UserSocialAuth.objects.filter(
        live_profile_filter("user"), pk=ctx.identity_id, user_id=ctx.owner.pk
    ).exists()


def _locked_owned(locked: Locked, ctx: RefreshContext) -> bool:
    """``_still_owned`` read from the profile and identity rows this transaction has locked: they
    cannot change until it ends, so the query (one per refresh, issue 17.4) would only repeat them."""
    return (
        locked.identity is not None
        and locked.identity.pk == ctx.identity_id
        and locked.owner is not None
        and locked.owner.pk == ctx.owner.pk
        and locked.identity.user_id == locked.owner.pk
        and locked.owner.is_live
    )


def _refresh_with_row_lock(ctx: RefreshContext) -> tuple[TokenSet, bool]:
    error: errors.TokenVaultError | None = None
    refreshed = False
    with transaction.atomic():
        # The one lock order (``accounts.locking``): profile, identity, then token set, held for
        # the provider call. A disconnect or a merge takes the same rows in the same order, so it
        # waits for this refresh and then revokes or moves the tokens it wrote (issue 20.2: taking
        # the token set first and the identity row last, to save ``extra_data``, deadlocked).
        locked = lock_token_set_chain(token_set_id=ctx.token_set_id)
        token_set = locked.token_set
        verdict = _precheck(token_set, ctx, timezone.now(), owned=_locked_owned(locked, ctx))
        if verdict.kind == "fresh":
            return token_set, False
        if verdict.kind == "fail":
            if verdict.mark_reconnect:
                mark_reconnect_required(token_set, ctx, code=verdict.mark_reconnect)
            error = verdict.error
        else:
            # The identity and its owner are locked: neither can change during the call.
            outcome = call_provider(token_set, ctx)
            error = apply_outcome(token_set, outcome, ctx)
            refreshed = error is None
    if error is not None:
        raise error
    return token_set, refreshed


def lease_seconds() -> int:
    """The provider call is bounded by the refresh deadline, so the lease is too: a process that
    died mid-refresh holds it no longer than that (issue 20: a dead lease cost the next caller 24 s)."""
    return math.ceil(refresh_deadline()) + 1


def _refresh_with_lease(ctx: RefreshContext) -> tuple[TokenSet, bool]:
    lease = uuid.uuid4().hex
    # A waiter gives up at the same deadline as a refresh, with Retry-After until the lease ends.
    deadline = time.monotonic() + refresh_deadline()
    while True:
        token_set = TokenSet.objects.filter(pk=ctx.token_set_id).first()
        now = timezone.now()
        verdict = _precheck(token_set, ctx, now)
        if verdict.kind == "fresh":
            return token_set, False
        if verdict.kind == "fail":
            if verdict.mark_reconnect:
                with transaction.atomic():
                    current = TokenSet.objects.filter(pk=token_set.pk, version=token_set.version).first()
                    if current is not None:
                        mark_reconnect_required(current, ctx, code=verdict.mark_reconnect)
            raise verdict.error
        if token_set.lease_id and token_set.lease_expires_at and token_set.lease_expires_at > now:
            if time.monotonic() > deadline:
                left = math.ceil((token_set.lease_expires_at - now).total_seconds())
                raise errors.ProviderUnavailable(
                    f"Another refresh of this token is taking too long; try again in {max(1, left)} s.",
                    retry_after=max(1, left),
                    connection=token_set.provider,
                )
            time.sleep(LEASE_POLL_SECONDS)
            continue
        with transaction.atomic():
            claimed = TokenSet.objects.filter(
                pk=token_set.pk,
                version=token_set.version,
                lease_id=token_set.lease_id,
                identity_id=ctx.identity_id,
            ).update(
                lease_id=lease,
                lease_expires_at=now + timedelta(seconds=lease_seconds()),
                # Bumped so a caller that read the row before this claim, and tries to claim it
                # after this refresh has finished (lease empty again), fails instead of refreshing
                # a second time without seeing this refresh's outcome (e.g. an outage pause).
                version=F("version") + 1,
            )
        if claimed:
            break

    try:
        outcome = call_provider(token_set, ctx)
    except BaseException:
        _release_lease(token_set.pk, lease)
        raise

    error: errors.TokenVaultError | None = None
    lost = ""
    try:
        with transaction.atomic():
            locked = lock_token_set_chain(token_set_id=token_set.pk)  # the one lock order
            current = locked.token_set
            if current is None or current.identity_id != ctx.identity_id or locked.identity is None:
                lost = "removed"
            elif locked.owner is None or locked.owner.pk != ctx.owner.pk:
                lost = "moved"
            elif current.lease_id != lease:
                lost = "lease"
            else:
                error = apply_outcome(current, outcome, ctx)
            if lost == "removed" and outcome.kind == "success":
                # The identity went away while the provider answered: these fresh tokens belong to
                # nobody now, so they go straight to revocation rather than into any token set.
                _detach_fresh_tokens(token_set, outcome, ctx)
            if lost == "moved" and outcome.kind == "success" and current.lease_id == lease:
                # A merge moved the identity while the provider answered; the old refresh token
                # may be rotated away now, so the fresh tokens stay with the identity, bound to
                # its new owner (the caller, who asked as the old owner, still gets no token).
                apply_outcome(current, outcome, replace(ctx, owner=locked.owner))
    except BaseException:
        _release_lease(token_set.pk, lease)
        raise
    if lost:
        if lost != "lease":
            _release_lease(token_set.pk, lease)
        logger.warning(
            "Token set %s: refresh result not handed out (identity %s during the provider call)",
            token_set.pk,
            lost,
        )
        if lost == "lease":
            raise errors.ProviderUnavailable(
                "The token was being refreshed elsewhere; try again.",
                retry_after=1,
                connection=token_set.provider,
            )
        raise gone_error(token_set, ctx.requested)
    if error is not None:
        raise error
    return current, True


def _release_lease(token_set_id: int, lease: str) -> None:
    with transaction.atomic():
        TokenSet.objects.under_lease(token_set_id, lease).release_lease()


@sensitive_variables()
def force_refresh(*, token_set_id: int, actor: User | None = None) -> TokenSet:
    """Refresh now, whatever the expiry, status or outage pause say (staff "Force refresh")."""
    token_set = TokenSet.objects.select_related("identity__user").filter(pk=token_set_id).first()
    if token_set is None or token_set.identity is None:
        raise errors.ConnectionRequired("This account is no longer linked.")
    identity = token_set.identity
    refreshed, _ = refresh(
        RefreshContext(
            token_set_id=token_set.pk,
            identity_id=identity.pk,
            owner=identity.user,
            min_ttl=0,
            force=True,
            actor=actor,
        )
    )
    return refreshed


#: A work item of a provider paused by a 429 this run: not sent, counted as backed off.
_PAUSED = object()


def refresh_expiring(
    *,
    within: int,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> RefreshReport:
    """Refresh every linked, active token set whose access token expires within ``within`` seconds.

    Up to ``workers`` token sets at a time (each refresh mostly waits on its provider; the
    single-flight lock keeps two runs from refreshing one set). A provider that answers 429 is
    left alone for what its ``Retry-After`` asked: its other sets wait for a later run (counted as
    ``backed_off["rate_limited"]``, the provider in ``paused``). ``progress(done, total)`` after
    each one, so a terminal can show a rate and an ETA."""
    report = RefreshReport()
    now = timezone.now()
    horizon = now + timedelta(seconds=within)
    issuers = configured_issuers()
    paused_until: dict[str, datetime] = {}
    lock = threading.Lock()
    total = 0 if dry_run else due_token_sets(horizon).count()

    def back_off(reason: str) -> None:
        with lock:
            report.backed_off[reason] = report.backed_off.get(reason, 0) + 1

    def is_paused(provider: str) -> bool:
        until = paused_until.get(provider)
        return until is not None and until > timezone.now()

    def contexts():
        for token_set in due_in_pages(horizon):
            identity = token_set.identity
            # Issue 20.1: a removed provider's tokens, or an identity bound to an issuer its provider
            # no longer has, are never sent anywhere; counted in one summary line.
            skipped = unusable_reason(identity, issuers=issuers)
            if skipped is not None:
                report.skipped[skipped] = report.skipped.get(skipped, 0) + 1
                continue
            report.due += 1
            if token_set.retry_not_before and token_set.retry_not_before > now:
                # Said in the summary by reason, so a run that skipped everything does not look clean.
                back_off(token_set.last_error_code or "unknown")
                continue
            if is_paused(token_set.provider):
                back_off(RATE_LIMITED)
                continue
            yield (
                token_set.provider,
                RefreshContext(
                    token_set_id=token_set.pk, identity_id=identity.pk, owner=identity.user, min_ttl=within
                ),
            )

    if dry_run:
        for _ in contexts():
            pass
        return report

    def work(item: tuple[str, RefreshContext]) -> object:
        provider, ctx = item
        if is_paused(provider):
            return _PAUSED
        try:
            return refresh(ctx)[1]
        except errors.ProviderUnavailable as error:
            if was_rate_limited(ctx.token_set_id):
                seconds = int(error.retry_after or 0) or OUTAGE_RETRY_AFTER
                with lock:
                    paused_until[provider] = timezone.now() + timedelta(seconds=seconds)
                    report.paused[provider] = max(report.paused.get(provider, 0), seconds)
            raise

    def count(result: object) -> None:
        if result is _PAUSED:
            back_off(RATE_LIMITED)  # the selection counts into the same dict from another thread
        elif isinstance(result, errors.TokenVaultError):
            report.failed[result.code] = report.failed.get(result.code, 0) + 1
        elif result:
            report.refreshed += 1
        else:
            report.already_fresh += 1
        if progress:
            done = report.refreshed + report.already_fresh + sum(report.failed.values())
            progress(done, max(total, done))

    run_bounded(contexts(), work, workers=workers, expected=(errors.TokenVaultError,), on_done=count)
    return report


@sensitive_variables()
def _detach_fresh_tokens(token_set: TokenSet, outcome: Outcome, ctx: RefreshContext) -> None:
    """Tokens a refresh received for an identity removed meanwhile: kept only until revoked."""
    orphan = TokenSet.create_detached(
        owner_id=ctx.owner.pk,
        provider=token_set.provider,
        uid=token_set.uid,
        response=parse_token_response(outcome.response or {}, received_at=outcome.received_at),
    )
    revoke_after_commit(orphan.pk)
