"""A person's merge, step by step: fresh proof of this profile, then of the other one, then review.

The state between the steps is ``accounts.flow_state.MergeFlow`` in the person's session; the
merge itself is ``accounts.merging.merge_profiles``. Proofs are short-lived: a merge moves only
identities signed in with in the last ``MERGE_PROOF_SECONDS``.
"""

from __future__ import annotations

import time

from django.http import HttpRequest
from social_django.models import UserSocialAuth

from . import flow_state
from .flow_state import MergeFlow, Session
from .models import User

MERGE_PROOF_SECONDS = 600


def start_merge_flow(request: HttpRequest) -> None:
    flow_state.save_merge_flow(request.session, MergeFlow(into=request.user.pk, started_at=int(time.time())))


def current_merge_flow(request: HttpRequest) -> MergeFlow | None:
    """The current merge flow if it belongs to this user and is recent enough to act on."""
    flow = flow_state.merge_flow(request.session)
    if flow is None or flow.into != request.user.pk:
        return None
    if time.time() - flow.started_at > MERGE_PROOF_SECONDS:
        return None
    return flow


def ready_merge(request: HttpRequest) -> tuple[MergeFlow, User] | None:
    """The flow and the other profile, once both fresh sign-ins happened; else None."""
    flow = current_merge_flow(request)
    if flow is None or not flow.source or not flow.into_proved_at:
        return None
    source = User.objects.filter(pk=flow.source).first()
    return (flow, source) if source is not None else None


def record_into_proof(session: Session, user_id: int) -> None:
    """The person just re-authenticated on the profile that stays (step one)."""
    flow = flow_state.merge_flow(session)
    if flow is not None and flow.into == user_id:
        flow.into_proved_at = int(time.time())
        flow_state.save_merge_flow(session, flow)


def record_source_proof(session: Session, *, into_id: int, identity: UserSocialAuth) -> bool:
    """Remember that the person just signed in with ``identity`` of another profile."""
    flow = flow_state.merge_flow(session)
    if flow is None or flow.into != into_id or not flow.into_proved_at:
        return False
    if flow.source != identity.user_id:
        flow.source = identity.user_id
        flow.proofs = {}
    flow.proofs[str(identity.pk)] = int(time.time())
    flow_state.save_merge_flow(session, flow)
    return True


def proven_identity_ids(flow: MergeFlow) -> set[int]:
    now = time.time()
    return {int(pk) for pk, at in flow.proofs.items() if now - at <= MERGE_PROOF_SECONDS}


def finish_merge_flow(request: HttpRequest) -> None:
    flow_state.clear_merge_flow(request.session)
