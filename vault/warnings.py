"""Warning mail before things break: an agent key about to expire, a connection that needs
"Reconnect", a renewal that has failed for a day. Sent by ``vault_refresh`` (cron), at most once per
thing per day, and again the next day while it is still true.

Each mail is claimed by inserting a ``WarningSent`` row in the transaction that checks the thing is
still due; the unique (kind, subject, day) constraint makes two concurrent runs claim it once. The
mail goes out after that commit, so no database lock is held while a mail server answers; a mail the
server refused gives its claim back, and the next run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template import Context
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone

from accounts.issuers import configured_issuers, unusable_reason
from accounts.models import User, live_profile_filter
from accounts.notifications import notice_address, person_text
from accounts.providers import provider_title
from accounts.templatetags.plain_words import when_text
from activity.models import Activity

from .activity_kinds import VaultKind
from .models import AgentKey, TokenSet, WarningSent
from .querysets import KEY_FAULT_CODES

logger = logging.getLogger(__name__)

Kind = WarningSent.Kind

#: A renewal failing this long (since the last good one) is mailed about.
REFRESH_FAILING_AFTER = timedelta(days=1)
#: Claims older than this are deleted by a run: only today's decide anything, the rest is history.
KEEP_CLAIMS_DAYS = 30


@dataclass
class WarningCounts:
    """Mails sent by kind (in a dry run: that would be sent), and why others were not. Never a secret."""

    key_expiring: int = 0
    reconnect_needed: int = 0
    refresh_failing: int = 0
    #: Mailed earlier the same day (by this or another run).
    already_sent: int = 0
    #: Due, but the person has no address a provider verified: nothing is sent, nothing claimed.
    no_address: int = 0
    #: The mail server refused; the claim is given back and the next run tries again.
    failed: int = 0

    @property
    def sent(self) -> int:
        return self.key_expiring + self.reconnect_needed + self.refresh_failing

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Due:
    """One mail to send: about what, to whom, in which words; ``still_due`` re-checks it when claiming."""

    kind: str
    subject_key: str
    user: User
    subject: str
    template: str
    context: dict
    still_due: Callable[[], bool]


def send_due_warnings(*, now: datetime | None = None, dry_run: bool = False) -> WarningCounts:
    """Mail every warning due at ``now`` that was not mailed yet today; a dry run only counts."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    counts = WarningCounts()
    for due in _all_due(now):
        _deliver(due, today=today, counts=counts, dry_run=dry_run)
    if not dry_run:
        WarningSent.objects.filter(sent_on__lt=today - timedelta(days=KEEP_CLAIMS_DAYS)).delete()
    return counts


def _all_due(now: datetime) -> Iterator[_Due]:
    yield from _expiring_keys(now)
    issuers = configured_issuers()
    yield from _reconnect_needed(now, issuers)
    yield from _refresh_failing(now, issuers)


def _deliver(due: _Due, *, today: date, counts: WarningCounts, dry_run: bool) -> None:
    address = notice_address(due.user)
    if not address:
        counts.no_address += 1
        return
    claimed_today = WarningSent.objects.filter(kind=due.kind, subject_key=due.subject_key, sent_on=today)
    if claimed_today.exists():
        counts.already_sent += 1
        return
    if dry_run:
        _count(counts, due.kind)
        return
    try:
        with transaction.atomic():
            if not due.still_due():  # changed since it was listed (revoked, reconnected...)
                return
            claim = WarningSent.objects.create(
                kind=due.kind, subject_key=due.subject_key, user=due.user, sent_on=today
            )
    except IntegrityError:  # another run claimed it first: that one mails
        counts.already_sent += 1
        return
    try:
        _send(address=address, due=due)
    except Exception:
        logger.exception(
            "Could not mail warning %s about %s to user %s", due.kind, due.subject_key, due.user.pk
        )
        WarningSent.objects.filter(pk=claim.pk).delete()
        counts.failed += 1
        return
    _count(counts, due.kind)


def _count(counts: WarningCounts, kind: str) -> None:
    setattr(counts, kind, getattr(counts, kind) + 1)


def _send(*, address: str, due: _Due) -> None:
    """As ``accounts.notifications.send_notice`` (same address rule, plain text without HTML
    escaping), but a refused mail raises, so its claim can be given back."""
    body = get_template(due.template).template.render(
        Context({"user": due.user, **due.context}, autoescape=False)
    )
    send_mail(due.subject, body, settings.DEFAULT_FROM_EMAIL, [address])


def _and_list(words: list[str]) -> str:
    """``GitHub, Google and Okta``."""
    if len(words) <= 1:
        return "".join(words) or "any provider"
    return f"{', '.join(words[:-1])} and {words[-1]}"


def _link(name: str) -> str:
    return f"{settings.SITE_URL}{reverse(name)}"


def _keys_expiring(now: datetime) -> QuerySet[AgentKey]:
    """Live keys that expire within ``VAULT_KEY_EXPIRY_WARNING_DAYS`` (see ``_in_window``)."""
    days = settings.VAULT_KEY_EXPIRY_WARNING_DAYS
    if days <= 0:
        return AgentKey.objects.none()
    return AgentKey.objects.filter(
        live_profile_filter("user"),
        revoked_at__isnull=True,
        expires_at__gt=now,
        expires_at__lte=now + timedelta(days=days),
    )


def _in_window(key: AgentKey, now: datetime) -> bool:
    """A key that lives shorter than twice the warning days is mailed about in the second half of
    its life only: a 7-day key is not "expiring soon" the moment it is made."""
    return key.expires_at - now <= now - key.created_at


def _expiring_keys(now: datetime) -> Iterator[_Due]:
    for key in _keys_expiring(now).select_related("user").order_by("expires_at", "pk"):
        if not _in_window(key, now):
            continue
        yield _Due(
            kind=Kind.KEY_EXPIRING,
            subject_key=f"agent_key:{key.pk}",
            user=key.user,
            subject="An agent key on your profile expires soon",
            template="email/warning_key_expiring.txt",
            context={
                "key_name": person_text(key.name),
                "hint": key.hint,
                "expires": when_text(key.expires_at),
                "providers": _and_list([provider_title(name) for name in key.providers]),
                "link": _link("vault:agents"),
            },
            still_due=lambda pk=key.pk: _keys_expiring(now).filter(pk=pk).exists(),
        )


def _live_linked() -> QuerySet[TokenSet]:
    """Token sets of an identity that is still linked, on a profile that is still in use."""
    return TokenSet.objects.linked().filter(live_profile_filter("identity__user"))


def _needs_reconnect(now: datetime) -> QuerySet[TokenSet]:
    """What the connections page shows as needing "Reconnect" (``vault.status.token_status``)."""
    return _live_linked().filter(
        Q(status__in=[TokenSet.Status.RECONNECT_REQUIRED, TokenSet.Status.VAULT_FAULT])
        | Q(
            status=TokenSet.Status.ACTIVE,
            expires_at__lte=now,
            refresh_token_encrypted="",
            expiry_assumed=False,
        )
    )


def _account_name(token_set: TokenSet) -> str:
    details = getattr(token_set.identity, "details", None)
    return person_text(details.account_name if details and details.account_name else token_set.uid)


def _reconnect_reason(token_set: TokenSet, title: str) -> tuple[str, datetime | None]:
    """Why, in plain words, and since when."""
    if token_set.status == TokenSet.Status.VAULT_FAULT:
        return "the access this site stored for it can no longer be read here.", token_set.last_error_at
    if token_set.status == TokenSet.Status.RECONNECT_REQUIRED:
        return (
            f"{title} no longer accepts the access you gave this site (it was withdrawn at {title}, "
            "or it ran out).",
            token_set.last_error_at,
        )
    return (
        f"the access {title} gave has expired and {title} gave nothing to renew it with.",
        token_set.expires_at,
    )


def _reconnect_needed(now: datetime, issuers) -> Iterator[_Due]:
    rows = _needs_reconnect(now).select_related("identity__user", "identity__details").order_by("pk")
    for token_set in rows:
        identity = token_set.identity
        if unusable_reason(identity, issuers=issuers) is not None:
            continue  # a provider removed from the settings: reconnecting is not possible
        title = provider_title(token_set.provider)
        reason, since = _reconnect_reason(token_set, title)
        yield _connection_warning(
            token_set,
            kind=Kind.RECONNECT_NEEDED,
            subject=f"Reconnect your {title} account",
            reason=reason,
            since=since,
            still_due=lambda pk=token_set.pk: _needs_reconnect(now).filter(pk=pk).exists(),
        )


def _connection_warning(
    token_set: TokenSet, *, kind: str, subject: str, reason: str, since, still_due
) -> _Due:
    """A warning about one connection's tokens: the mail names the account and links to connections."""
    return _Due(
        kind=kind,
        subject_key=f"token_set:{token_set.pk}",
        user=token_set.identity.user,
        subject=subject,
        template=f"email/warning_{kind}.txt",
        context={
            "provider": provider_title(token_set.provider),
            "account_name": _account_name(token_set),
            "reason": reason,
            "since": when_text(since),
            "link": _link("accounts:connections"),
        },
        still_due=still_due,
    )


def _renewal_failing() -> QuerySet[TokenSet]:
    """Active, and the last renewal failed (a success clears ``last_error_code``). A vault key
    fault is the site's own, told to staff by ``vault_status``, not mailed to people."""
    return (
        _live_linked()
        .filter(status=TokenSet.Status.ACTIVE)
        .exclude(last_error_code="")
        .exclude(last_error_code__in=KEY_FAULT_CODES)
    )


def _failures_since_last_success(token_set: TokenSet) -> QuerySet[Activity]:
    """The failed renewals recorded since the tokens were last written (a sign-in or a refresh)."""
    failures = Activity.objects.filter(
        kind=VaultKind.REFRESH_FAILED, provider=token_set.provider, uid=token_set.uid
    )
    if token_set.issued_at is not None:
        failures = failures.filter(created_at__gt=token_set.issued_at)
    return failures


def _refresh_failing(now: datetime, issuers) -> Iterator[_Due]:
    rows = _renewal_failing().select_related("identity__user", "identity__details").order_by("pk")
    for token_set in rows:
        identity = token_set.identity
        if unusable_reason(identity, issuers=issuers) is not None:
            continue
        failures = _failures_since_last_success(token_set)
        first = failures.order_by("created_at", "id").first()
        if first is None or first.created_at > now - REFRESH_FAILING_AFTER:
            continue
        last = failures.order_by("-created_at", "-id").first()
        title = provider_title(token_set.provider)
        if last is not None and (last.data or {}).get("staff"):
            reason = f"{title} refused this site's own settings; the site's staff have been told."
        else:
            reason = f"{title} did not answer, or answered with an error, each time it was asked."
        yield _connection_warning(
            token_set,
            kind=Kind.REFRESH_FAILING,
            subject=f"Your {title} access has not been renewed for a day",
            reason=reason,
            since=first.created_at,
            still_due=lambda pk=token_set.pk: _renewal_failing().filter(pk=pk).exists(),
        )
