"""The vault's part in accounts' work, through accounts' one extension point
(``accounts.adapter``; named by ``ACCOUNTS_ADAPTER`` in settings).

- the connections page shows each identity's token status (``vault.status``, rendered by
  ``vault/identity_token_status.html``);
- the merge review says what happens to the merged-away profile's tokens;
- inside the merge transaction, moved identities' tokens are re-bound to their new owner, and the
  merged-away profile's agent keys are revoked and its pending connect requests closed;
- tokens a refused flow received are kept encrypted only until they are revoked;
- ``/readyz`` fails while the vault keys do not load or do not decrypt what the database holds.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.views.decorators.debug import sensitive_variables

from accounts.adapter import AccountsAdapter, IdentityStatus
from accounts.models import User

from .agent_models import AgentKey
from .agents import revoke_all_keys
from .capture import rebind_owner
from .connect import cancel_pending
from .key_checks import readiness_problem
from .pipeline import revoke_unkept_tokens
from .status import connections_extras, granted_scopes, merge_review_extras


class VaultAccountsAdapter(AccountsAdapter):
    def identity_statuses(self, user: User) -> dict[int, IdentityStatus]:
        return {
            identity_id: IdentityStatus(
                html=render_to_string("vault/identity_token_status.html", {"token": status}),
                needs_reconnect=status["needs_reconnect"],
            )
            for identity_id, status in connections_extras(user).items()
        }

    def merge_review(self, source: User) -> dict[str, str]:
        return merge_review_extras(source)

    def profiles_merging(
        self,
        *,
        source: User,
        into: User,
        moved_identity_ids: list[int],
        dropped_identity_ids: list[int],
        actor: User | None,
    ) -> None:
        # Moved identities' tokens are re-encrypted bound to their new owner (dropped ones are
        # revoked by ``vault.signals`` when the merge deletes them). ``rebind_owner`` never
        # raises: a token set that cannot be re-bound still reads under its old binding, and is
        # re-bound on its next refresh.
        for identity_id in moved_identity_ids:
            rebind_owner(identity_id=identity_id, owner_id=into.pk)
        # A merged-away profile's agent keys stop working and its pending connect requests close.
        reason = f"profile merged into profile {into.pk}"
        revoke_all_keys(user=source, reason=reason)
        cancel_pending(user=source, reason=reason)

    @sensitive_variables()
    def unkept_tokens(
        self, *, provider: str, uid: str, owner_id: int | None, tokens: dict[str, Any], reason: str
    ) -> None:
        revoke_unkept_tokens(provider=provider, uid=uid, owner_id=owner_id, tokens=tokens, reason=reason)

    def granted_scopes(self, user: User, provider: str) -> list[str]:
        return granted_scopes(user=user, provider=provider)

    def agent_key_names(self, user: User) -> dict[int, str]:
        return dict(AgentKey.objects.filter(user=user).values_list("pk", "name"))

    def readiness_problems(self) -> list[str]:
        problem = readiness_problem()
        return [problem] if problem else []
