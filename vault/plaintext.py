"""Plaintext tokens a stock social-auth install left in ``extra_data``: find, move, scrub.

social-auth's own ``load_extra_data`` writes ``access_token`` / ``refresh_token`` (and more) in
plaintext into ``UserSocialAuth.extra_data``. This site never does, but a database adopted from a
stock install still holds them until each person signs in again (issue 20, "also seen").
``import_plaintext_tokens`` moves them into the vault the way a sign-in's capture does (encrypted
token sets) and scrubs every secret key from ``extra_data``, keeping the rest
(``_oidc_id_token_context``, ``login``, ``id`` ...). ``manage.py check --deploy`` warns while any
remain (``check_plaintext_extra_data``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core import checks
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from social_django.models import UserSocialAuth

from accounts.locking import InactiveProfile
from accounts.pipeline import SECRET_EXTRA_DATA_KEYS

from .capture import capture_tokens
from .locking import lock_identity_chain
from .models import TokenSet
from .responses import parse_token_response
from .revocation import revoke_after_commit

logger = logging.getLogger(__name__)

#: Keys whose presence means a secret is (or was) stored in plaintext.
PLAINTEXT_TOKEN_KEYS = ("access_token", "refresh_token", "id_token")


def identities_with_plaintext() -> QuerySet[UserSocialAuth]:
    """Identities whose ``extra_data`` still holds a token key (one indexed-free scan; counts only)."""
    query = Q()
    for key in PLAINTEXT_TOKEN_KEYS:
        query |= Q(extra_data__has_key=key)
    return UserSocialAuth.objects.filter(query)


@dataclass
class ImportReport:
    """Counts for ``vault_import_extra_data`` (never a token)."""

    found: int = 0
    moved: int = 0
    already_in_vault: int = 0
    sent_to_revocation: int = 0
    nothing_usable: int = 0
    scrubbed: int = 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _expiry(
    extra: dict[str, Any], identity: UserSocialAuth, has_refresh: bool
) -> tuple[datetime, int | None]:
    """(received_at, expires_in) as social-auth recorded them (``auth_time`` + ``expires``)."""
    lifetime = extra.get("expires_in", extra.get("expires"))
    try:
        expires_in = int(lifetime) if lifetime is not None and not isinstance(lifetime, bool) else None
    except (TypeError, ValueError):
        expires_in = None
    received_at = identity.modified or timezone.now()
    auth_time = extra.get("auth_time")
    if isinstance(auth_time, int | float) and not isinstance(auth_time, bool) and auth_time > 0:
        received_at = datetime.fromtimestamp(auth_time, tz=UTC)
    if expires_in is None and has_refresh:
        # Unknown age: treat it as expired, so its first use refreshes it (and proves it still works).
        expires_in = 0
    return received_at, expires_in


@sensitive_variables()
def _import_one(identity_id: int, report: ImportReport) -> None:
    with transaction.atomic():
        locked = lock_identity_chain(identity_id=identity_id)  # the one lock order
        identity = locked.identity
        if identity is None:
            return
        extra = dict(identity.extra_data or {})
        access, refresh = _text(extra.get("access_token")), _text(extra.get("refresh_token"))
        if locked.token_set is not None:
            # The vault's copy is at least as new (a sign-in since wrote it): the plaintext just goes.
            report.already_in_vault += 1
        elif access is None:
            report.nothing_usable += 1
        else:
            received_at, expires_in = _expiry(extra, identity, has_refresh=refresh is not None)
            response = {
                "access_token": access,
                "refresh_token": refresh,
                "token_type": extra.get("token_type") or "Bearer",
                "expires_in": expires_in,
                "scope": extra.get("scope") if isinstance(extra.get("scope"), str) else None,
            }
            try:
                capture_tokens(identity=identity, response=response, received_at=received_at)
                report.moved += 1
            except InactiveProfile:
                # A merged-away or deactivated profile gets nothing attached: revoke them instead.
                orphan = TokenSet.create_detached(
                    owner_id=identity.user_id,
                    provider=identity.provider,
                    uid=identity.uid,
                    response=parse_token_response(response, received_at=received_at),
                )
                revoke_after_commit(orphan.pk)
                report.sent_to_revocation += 1
        identity.extra_data = {k: v for k, v in extra.items() if k not in SECRET_EXTRA_DATA_KEYS}
        identity.save(update_fields=["extra_data", "modified"])
        report.scrubbed += 1


def import_plaintext_tokens(*, dry_run: bool = False) -> ImportReport:
    """Move every plaintext token left in ``extra_data`` into the vault and scrub it; one
    transaction per identity, so an interrupted run is simply run again."""
    ids = list(identities_with_plaintext().order_by("pk").values_list("pk", flat=True))
    report = ImportReport(found=len(ids))
    if dry_run:
        return report
    for identity_id in ids:
        _import_one(identity_id, report)
    logger.info(
        "Plaintext extra_data: %d found, %d moved into the vault, %d scrubbed",
        report.found,
        report.moved,
        report.scrubbed,
    )
    return report


def check_plaintext_extra_data(app_configs=None, **kwargs) -> list:
    """Deploy check: warn while any identity's ``extra_data`` holds a plaintext token."""
    try:
        count = identities_with_plaintext().count()
    except Exception:  # no database (yet): nothing stored
        return []
    if not count:
        return []
    return [
        checks.Warning(
            f"{count} linked account(s) hold plaintext OAuth tokens in extra_data (left by a stock "
            "social-auth install).",
            hint="Run manage.py vault_import_extra_data --dry-run, then without --dry-run, to move them "
            "into the vault and scrub them.",
            id="vault.W001",
        )
    ]
