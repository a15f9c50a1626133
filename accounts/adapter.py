"""The one extension point of ``accounts``: an adapter object, in the spirit of django-allauth's
``DefaultAccountAdapter``.

``accounts`` never imports the apps built on it (the vault imports accounts, not the other way
round), yet they must take part in some of its work: show a status per identity on the
connections page, say what a merge does to their data, move their rows inside the merge
transaction, take the tokens of a refused flow, and report readiness problems. ``accounts``
asks ``get_adapter()`` at each of those points; the ``ACCOUNTS_ADAPTER`` setting names the class
(``"vault.adapter.VaultAccountsAdapter"`` on this site). The defaults here do nothing, so
``accounts`` works alone. docs/architecture.md ("The extension point") has the overview.

The other wiring is social-auth's own and stays where social-auth looks for it, in settings:
``SOCIAL_AUTH_PIPELINE`` runs ``vault.pipeline.store_tokens`` (tokens that arrive at sign-in
are captured) and ``SOCIAL_AUTH_DISCONNECT_PIPELINE`` runs ``vault.pipeline.schedule_revocation``
(a removed identity's tokens wait for revocation). Model signals (``pre_delete`` of an identity,
a deactivated user) are received by the app that owns the reaction (``vault/signals.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .models import User

#: The adapter used when ``ACCOUNTS_ADAPTER`` is not set: accounts on its own.
DEFAULT_ADAPTER = "accounts.adapter.AccountsAdapter"


@dataclass(frozen=True)
class IdentityStatus:
    """What another app shows about one identity on the connections page. Never a secret.

    ``html`` is markup the adapter rendered itself (``<dt>``/``<dd>`` pairs for the identity's
    facts list; mark it safe, e.g. ``render_to_string``); ``needs_reconnect`` offers the
    "Reconnect <Provider>" button.
    """

    html: str = ""
    needs_reconnect: bool = False


class AccountsAdapter:
    """Base adapter: every method is a no-op default. Subclass it and name the subclass in
    ``ACCOUNTS_ADAPTER``; override only what your app takes part in."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        self.request = request

    def identity_statuses(self, user: User) -> dict[int, IdentityStatus]:
        """``{identity id: status}`` for the connections page (one call per page, for all of
        ``user``'s identities; identities left out show no status)."""
        return {}

    def merge_review(self, source: User) -> dict[str, str]:
        """Lines for the merge review, ``{label: what happens}``, about ``source``'s data in your
        app (shown to the person and to staff before anything changes)."""
        return {}

    def profiles_merging(
        self,
        *,
        source: User,
        into: User,
        moved_identity_ids: list[int],
        dropped_identity_ids: list[int],
        actor: User | None,
    ) -> None:
        """Called inside the merge transaction, after the identities moved and before the dropped
        ones are deleted and ``source`` becomes a tombstone. Raising aborts the whole merge
        (nothing changes). Both profiles and their identities are locked already; lock your own
        rows after them (``accounts.locking``'s order).

        ``source`` is merged away into ``into``; ``moved_identity_ids`` now belong to ``into``;
        ``dropped_identity_ids`` are deleted right after; ``actor`` is the staff member doing it,
        or None when the person did it.
        """

    def unkept_tokens(
        self, *, provider: str, uid: str, owner_id: int | None, tokens: dict[str, Any], reason: str
    ) -> None:
        """Tokens a provider issued to a flow the site then refused (or stopped at a question):
        nothing keeps them, so they should be revoked at the provider.

        Called after the pipeline's rollback, so what you write survives the refusal. ``tokens``
        holds the token response's parts (``accounts.refusals.TOKEN_RESPONSE_KEYS``); never log
        them. An exception is logged by type and does not hide the refusal.
        """

    def granted_scopes(self, user: User, provider: str) -> list[str]:
        """Scopes ``user`` already granted at ``provider``, which a link or reconnect asks for again
        so that signing in never takes access away (issue 14.2); empty when unknown."""
        return []

    def agent_key_names(self, user: User) -> dict[int, str]:
        """``{agent key id: name}`` of ``user``'s agent keys, revoked ones included, so the activity
        page names the agent behind each hand-out (one call per page); empty when unknown."""
        return {}

    def readiness_problems(self) -> list[str]:
        """One line per reason the site must not take traffic (``/readyz``); never a secret."""
        return []


def get_adapter(request: HttpRequest | None = None) -> AccountsAdapter:
    """The configured adapter (``ACCOUNTS_ADAPTER``), read at each call so tests can swap it."""
    adapter_class = import_string(getattr(settings, "ACCOUNTS_ADAPTER", DEFAULT_ADAPTER))
    return adapter_class(request)
