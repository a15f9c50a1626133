"""Which issuer vouched for each identity, and keeping a subject from another issuer out (issue 20.1).

An identity is keyed by ``(provider, uid)``. For Google and GitHub the backend name fixes the
issuer. For a provider whose issuer is configuration (OpenID Connect today: ``OIDC_<NAME>_ENDPOINT``;
SAML connections later: the IdP entity ID) the name alone says nothing: pointed at another tenant,
or removed and re-added for another issuer, the same name would let a stranger whose ``sub``
happens to match sign in to someone's profile. So the issuer an identity was made under is kept in
``IdentityDetails.issuer`` and:

* a sign-in or link whose existing ``(provider, uid)`` identity is bound to another issuer (or to
  none known) is refused before anything changes (:func:`refuse_other_issuer`);
* ``manage.py check`` fails while identities are bound to an issuer their provider no longer has
  (:func:`binding_problems`), until staff move them explicitly (:func:`rebind_issuer`, the
  ``accounts_oidc_issuer`` command) or remove them;
* a provider that is no longer configured at all is "not available": its identities stay visible to
  their owner and can be removed, but are never used (:func:`is_available`).

Any backend with an ``identity_issuer()`` method takes part; others have ``issuer`` empty.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils.module_loading import import_string
from social_core.exceptions import AuthResponseError
from social_django.models import UserSocialAuth
from social_django.utils import load_strategy

from .models import IdentityDetails
from .providers import is_configured

logger = logging.getLogger(__name__)

#: Where social-core keeps the original ID token's ``iss``/``sub``/``aud`` (refresh continuity).
ID_TOKEN_CONTEXT_KEY = "_oidc_id_token_context"
#: At most this many identity ids are listed in a check message.
LISTED_IDS = 20


def normalise(issuer: Any) -> str:
    """Issuers compare without a trailing slash (discovery URLs are built without it)."""
    return issuer.rstrip("/") if isinstance(issuer, str) else ""


def recorded_issuer(identity: UserSocialAuth) -> str:
    """The issuer ``identity`` was made under: its details, else its sign-in ID token's ``iss``."""
    details = getattr(identity, "details", None)
    if details is not None and details.issuer:
        return normalise(details.issuer)
    context = (identity.extra_data or {}).get(ID_TOKEN_CONTEXT_KEY)
    return normalise(context.get("iss")) if isinstance(context, dict) else ""


def is_available(provider: str) -> bool:
    """Is ``provider`` configured now? A removed provider's identities are "not available"."""
    return is_configured(provider)


def refuse_other_issuer(*, backend: Any, uid: str, issuer: str) -> None:
    """Refuse a sign-in or link whose ``(provider, uid)`` is bound to another (or no known) issuer.

    Runs after the ID token is validated and before the pipeline, so nothing is created, linked or
    signed in. Raises ``AuthResponseError`` with code ``issuer_mismatch``.
    """
    identity = (
        UserSocialAuth.objects.select_related("details").filter(provider=backend.name, uid=str(uid)).first()
    )
    if identity is None:
        return
    bound = recorded_issuer(identity)
    if bound and bound == normalise(issuer):
        return
    logger.warning(
        "Refused %s sign-in for identity %s: it is bound to %s, the provider now has issuer %s",
        backend.name,
        identity.pk,
        "an unknown issuer" if not bound else "another issuer",
        normalise(issuer),
    )
    raise AuthResponseError(
        backend,
        "This account was linked under another issuer",
        claim="iss",
        code="issuer_mismatch",
        stage="token_validation",
    )


@dataclass(frozen=True)
class BindingProblem:
    """Identities of ``provider`` bound to an issuer other than its configured ``issuer``."""

    provider: str
    issuer: str
    #: other issuer ("" = unknown) -> identity ids
    others: dict[str, list[int]]

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.others.values())

    def detail(self) -> str:
        parts = []
        for other, ids in sorted(self.others.items()):
            shown = ", ".join(str(pk) for pk in ids[:LISTED_IDS]) + (", ..." if len(ids) > LISTED_IDS else "")
            parts.append(f"{len(ids)} under {other or 'an unknown issuer'} (ids {shown})")
        return (
            f"it now has the issuer {self.issuer}, but {self.count} of its identities were linked under "
            f"another one: {'; '.join(parts)}; sign-ins with them are refused"
        )


def configured_issuers() -> dict[str, str]:
    """``{backend name: issuer}`` of every configured backend whose issuer is configuration.

    Those are the backends with an ``identity_issuer()`` method (OpenID Connect's), found by that
    method rather than by class so this module needs no backend module (the backends import it).
    """
    issuers = {}
    strategy = load_strategy()
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            backend_cls = import_string(path)
        except ImportError:
            continue
        if not isinstance(backend_cls, type) or not callable(getattr(backend_cls, "identity_issuer", None)):
            continue
        backend = backend_cls(strategy)
        endpoint = backend.setting("OIDC_ENDPOINT")
        if isinstance(endpoint, str) and endpoint:  # a missing one is reported as oidc.E001
            issuers[backend.name] = normalise(backend.identity_issuer())
    return issuers


def binding_problems() -> list[BindingProblem]:
    """Configured providers with identities bound to another issuer (for ``manage.py check``)."""
    problems = []
    try:
        for provider, issuer in configured_issuers().items():
            others: dict[str, list[int]] = defaultdict(list)
            rows = UserSocialAuth.objects.filter(provider=provider).select_related("details").order_by("pk")
            for identity in rows.iterator(chunk_size=500):
                bound = recorded_issuer(identity)
                if bound != issuer:
                    others[bound].append(identity.pk)
            if others:
                problems.append(BindingProblem(provider, issuer, dict(others)))
    except DatabaseError:
        # Before ``migrate`` (no tables, or no issuer column yet) there is nothing to compare.
        return []
    return problems


@dataclass
class RebindReport:
    provider: str
    to_issuer: str
    #: previous issuer ("" = unknown) -> how many identities
    moved: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def count(self) -> int:
        return sum(self.moved.values())


class RebindRefused(Exception):
    """Bad input for :func:`rebind_issuer`; ``str()`` is one line for the operator."""


def rebind_issuer(
    *, provider: str, to_issuer: str, from_issuer: str | None = None, dry_run: bool = False
) -> RebindReport:
    """Bind ``provider``'s identities made under another issuer to ``to_issuer`` (a tenant move).

    Staff run it only when the provider really moved and the same ``sub`` means the same person at
    the new issuer. ``to_issuer`` must be the provider's configured issuer (no typo can bind
    identities to an issuer nobody uses); ``from_issuer`` limits it to identities of one old issuer.
    All or nothing, in one transaction.
    """
    issuers = configured_issuers()
    if provider not in issuers:
        raise RebindRefused(f"{provider!r} is not a configured OpenID Connect provider")
    target = normalise(to_issuer)
    if target != issuers[provider]:
        raise RebindRefused(
            f"{provider!r} is configured for the issuer {issuers[provider]}; --to must name exactly that "
            f"(got {to_issuer!r}). Change the provider's endpoint setting first."
        )
    source = normalise(from_issuer) if from_issuer is not None else None
    report = RebindReport(provider=provider, to_issuer=target, dry_run=dry_run)
    with transaction.atomic():
        identities = (
            UserSocialAuth.objects.select_for_update(of=("self",))
            .filter(provider=provider)
            .select_related("details")
            .order_by("pk")
        )
        for identity in identities:
            bound = recorded_issuer(identity)
            if bound == target or (source is not None and bound != source):
                continue
            report.moved[bound] = report.moved.get(bound, 0) + 1
            if not dry_run:
                IdentityDetails.objects.update_or_create(identity=identity, defaults={"issuer": target})
    logger.info(
        "%s %d %s identities to issuer %s",
        "Would rebind" if dry_run else "Rebound",
        report.count,
        provider,
        target,
    )
    return report


def unusable_reason(identity: UserSocialAuth, *, issuers: dict[str, str] | None = None) -> str | None:
    """Why ``identity``'s tokens must not be used or refreshed now, or None.

    ``provider_unavailable``: its provider is not configured any more. ``issuer_changed``: its
    provider now points at another issuer, which must never receive this identity's tokens.
    ``issuers`` is :func:`configured_issuers` (pass it when checking many identities).
    """
    if not is_available(identity.provider):
        return "provider_unavailable"
    issuers = configured_issuers() if issuers is None else issuers
    if identity.provider in issuers and recorded_issuer(identity) != issuers[identity.provider]:
        return "issuer_changed"
    return None
