"""What a person's flows keep in their session: one typed object per flow, read and written here.

Every session key of ``accounts`` lives in this module, so no other module spells one: the
provider round trip in progress (``AuthFlow``, one per backend), the sign-in stopped at the
"a profile with this email exists" question (``PendingLink``), the merge flow (``MergeFlow``) and
the time of the last interactive sign-in (sudo mode). Sessions are JSON, so each object is stored
as a plain dict and read back defensively: anything malformed reads as "no flow".
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

FlowPurpose = Literal["signin", "link", "reauth", "merge_proof"]

Session = MutableMapping[str, Any]

_AUTH_FLOW_PREFIX = "auth_flow:"
_PENDING_LINK_KEY = "pending_link"
_MERGE_FLOW_KEY = "merge_flow"
_SIGNED_IN_AT_KEY = "auth_at"
# The agents page (vault) keeps its post/redirect/get key and its form draft here too.
_AGENT_KEY_SHOWN_ONCE = "vault_new_agent_key"
_AGENT_FORM_DRAFT = "vault_agent_form_draft"
# social-auth's own key: where ``complete`` sends the browser once the pipeline is done.
_SOCIAL_NEXT_KEY = "next"

#: How long the "a profile with this email exists" question stays answerable.
PENDING_LINK_SECONDS = 900


def _from_dict(cls: type, value: object) -> Any:
    """The dataclass ``cls`` from a stored dict; None when it is not one (or is malformed)."""
    if not isinstance(value, dict):
        return None
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{key: item for key, item in value.items() if key in names})
    except TypeError:  # a required field is missing
        return None


@dataclass
class AuthFlow:
    """A provider round trip this session started: who started it, why, and where it goes next.

    The callback's pipeline compares the finishing user with ``user_id``; ``fresh`` makes the
    backend ask the provider for a fresh sign-in; ``separate_uid`` is the ``[provider, uid]`` the
    person chose to keep as a separate profile.
    """

    user_id: int | None
    purpose: FlowPurpose
    next: str
    scopes: list[str] = field(default_factory=list)
    started_at: int = 0
    separate_uid: list[str] | None = None
    fresh: bool = False


def save_auth_flow(session: Session, *, backend_name: str, flow: AuthFlow) -> None:
    session[_AUTH_FLOW_PREFIX + backend_name] = asdict(flow)


def auth_flow(session: Session, backend_name: str) -> AuthFlow | None:
    """The round trip in progress with ``backend_name`` (it stays until finished or refused)."""
    return _from_dict(AuthFlow, session.get(_AUTH_FLOW_PREFIX + backend_name))


def pop_auth_flow(session: Session, backend_name: str) -> AuthFlow | None:
    """End the round trip with ``backend_name``: it cannot be finished a second time."""
    return _from_dict(AuthFlow, session.pop(_AUTH_FLOW_PREFIX + backend_name, None))


def set_next_after_complete(session: Session, next_url: str) -> None:
    """Where social-auth's ``complete`` view redirects once the pipeline succeeded."""
    session[_SOCIAL_NEXT_KEY] = next_url


@dataclass
class PendingLink:
    """A sign-in stopped because its verified email matches another profile: who and what, no token."""

    provider: str
    uid: str
    email: str
    account_name: str
    profile_ids: list[int]
    at: int

    def is_for(self, provider: str, uid: str) -> bool:
        return [self.provider, self.uid] == [provider, uid]


def save_pending_link(session: Session, pending: PendingLink) -> None:
    session[_PENDING_LINK_KEY] = asdict(pending)


def pending_link(session: Session) -> PendingLink | None:
    """The sign-in stopped at the "a profile with this email exists" question, while still fresh."""
    pending = _from_dict(PendingLink, session.get(_PENDING_LINK_KEY))
    if pending is None or time.time() - pending.at > PENDING_LINK_SECONDS:
        return None
    return pending


def clear_pending_link(session: Session) -> None:
    session.pop(_PENDING_LINK_KEY, None)


@dataclass
class MergeFlow:
    """A person merging another profile into ``into``: when they proved each side, and how.

    ``proofs`` maps an identity id of the ``source`` profile (as a string: sessions are JSON) to
    the time the person signed in with it.
    """

    into: int
    started_at: int
    into_proved_at: int | None = None
    source: int | None = None
    proofs: dict[str, int] = field(default_factory=dict)


def save_merge_flow(session: Session, flow: MergeFlow) -> None:
    session[_MERGE_FLOW_KEY] = asdict(flow)


def merge_flow(session: Session) -> MergeFlow | None:
    return _from_dict(MergeFlow, session.get(_MERGE_FLOW_KEY))


def clear_merge_flow(session: Session) -> None:
    session.pop(_MERGE_FLOW_KEY, None)


def mark_signed_in(session: Session) -> None:
    """Record an interactive sign-in now (what sudo mode measures from)."""
    session[_SIGNED_IN_AT_KEY] = int(time.time())


def signed_in_at(session: Session) -> int | None:
    """When this session last signed in interactively (epoch seconds), if it ever did."""
    value = session.get(_SIGNED_IN_AT_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class HeldAgentKey:
    """A new agent key between the create POST and the GET that shows it once (post/redirect/get).

    ``sealed`` is the key encrypted by the vault (sessions live in the database); this module
    only keeps it, it cannot read it.
    """

    key_id: int
    sealed: str


def hold_agent_key(session: Session, held: HeldAgentKey) -> None:
    session[_AGENT_KEY_SHOWN_ONCE] = asdict(held)


def pop_agent_key(session: Session) -> HeldAgentKey | None:
    """The held key, removed: it is shown once, then forgotten."""
    held = _from_dict(HeldAgentKey, session.pop(_AGENT_KEY_SHOWN_ONCE, None))
    if held is None or not isinstance(held.key_id, int) or not isinstance(held.sealed, str):
        return None
    return held


_SAML_REQUEST_PREFIX = "saml_request:"


@dataclass
class SamlRequest:
    """An AuthnRequest this browser sent to an enterprise connection's IdP (``enterprise``).

    The ACS accepts a response only ``InResponseTo`` this ``request_id``, in this session, finished
    by ``user_id`` (None: signed out), once.
    """

    connection: str
    request_id: str
    user_id: int | None
    started_at: int


def save_saml_request(session: Session, request: SamlRequest) -> None:
    session[_SAML_REQUEST_PREFIX + request.connection] = asdict(request)


def pop_saml_request(session: Session, connection: str) -> SamlRequest | None:
    """The pending AuthnRequest to ``connection``, removed: a response answers it once."""
    found = _from_dict(SamlRequest, session.pop(_SAML_REQUEST_PREFIX + connection, None))
    if found is None or not isinstance(found.request_id, str) or not isinstance(found.started_at, int):
        return None
    return found


def hold_agent_form_draft(session: Session, draft: dict[str, list[str]]) -> None:
    """What was posted to the agent-key form, kept across the "confirm it's you" detour."""
    session[_AGENT_FORM_DRAFT] = draft


def pop_agent_form_draft(session: Session) -> dict[str, list[str]] | None:
    """The held draft, removed: it fills the form once."""
    draft = session.pop(_AGENT_FORM_DRAFT, None)
    if not isinstance(draft, dict):
        return None
    return {str(name): [str(v) for v in values] for name, values in draft.items() if isinstance(values, list)}
