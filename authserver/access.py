"""What the applications page shows: each application a person allowed, what it may get, when it
last exchanged a token, and its recent hand-outs (the same activity trail as agent keys')."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from accounts.models import User
from activity.models import Activity
from vault.activity_kinds import VaultKind

from . import clients
from .models import Consent
from .scopes import plain_words


@dataclass(frozen=True)
class AppAccess:
    consent: Consent
    title: str
    self_registered: bool
    lines: list[str]
    last_exchange_at: datetime | None
    hand_outs: list[Activity]


def apps_of(user: User, *, per_app: int = 5) -> list[AppAccess]:
    """Newest consent first, each with its last five hand-outs."""
    found = []
    for row in Consent.objects.filter(user=user).select_related("application"):
        hand_outs = list(
            Activity.objects.filter(
                user=user, kind=VaultKind.TOKEN_ISSUED, data__client_id=row.application.client_id
            ).order_by("-created_at", "-id")[:per_app]
        )
        found.append(
            AppAccess(
                consent=row,
                title=clients.title(row.application),
                self_registered=clients.is_self_registered(row.application),
                lines=plain_words(row.scopes, row.provider_scopes),
                last_exchange_at=row.last_exchange_at,
                hand_outs=hand_outs,
            )
        )
    return found
