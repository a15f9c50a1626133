"""What the agents page keeps between two requests: the new key (sealed) and the form draft.

A new key travels from the create POST to the GET that shows it once (post/redirect/get).
Sessions are stored in the database, so it is held there only encrypted with the vault's key,
bound to the key's row and owner, and the GET removes it. The create form a person filled in
survives the "confirm it's you" detour as a draft (names and scopes, nothing secret). The session
itself is read and written only by ``accounts.flow_state``.
"""

from __future__ import annotations

from django.http import QueryDict

from accounts import flow_state
from accounts.flow_state import Session

from . import crypto
from .errors import DecryptionFailed, VaultKeyError
from .models import AgentKey

_SHOWN_FIELD = "agent_key_shown_once"


def _binding(*, key_id: int, owner_id: int) -> crypto.Binding:
    return crypto.Binding(row_id=key_id, field=_SHOWN_FIELD, owner_id=owner_id, provider="", uid="")


def hold_new_key(session: Session, *, row: AgentKey, plaintext: str) -> None:
    """Keep the new key (encrypted) until the next agents page shows it."""
    sealed = crypto.encrypt(plaintext, binding=_binding(key_id=row.pk, owner_id=row.user_id))
    flow_state.hold_agent_key(session, flow_state.HeldAgentKey(key_id=row.pk, sealed=sealed))


def pop_new_key(session: Session, *, user_id: int) -> tuple[AgentKey, str] | None:
    """The held key and its row, removed from the session: it is shown once, then forgotten."""
    held = flow_state.pop_agent_key(session)
    if held is None:
        return None
    row = AgentKey.objects.filter(pk=held.key_id, user_id=user_id).first()
    if row is None:
        return None
    try:
        plaintext = crypto.decrypt(held.sealed, binding=_binding(key_id=row.pk, owner_id=user_id))
    except (DecryptionFailed, VaultKeyError):
        return None
    return row, plaintext


def hold_form_draft(session: Session, *, data: QueryDict, fields: list[str]) -> None:
    """Keep what was posted to the create form (only its own fields) across re-authentication."""
    draft = {
        name: [str(value)[:2000] for value in data.getlist(name)][:50] for name in fields if name in data
    }
    flow_state.hold_agent_form_draft(session, draft)


def pop_form_draft(session: Session) -> dict[str, list[str]] | None:
    """The held draft, removed: it fills the form once."""
    return flow_state.pop_agent_form_draft(session)
