"""Starting a provider round trip: what it is for, and the record the callback checks.

The OAuth round trip itself is social-auth's; ``start_flow`` records who started it and why
(``accounts.flow_state.AuthFlow``), and the pipeline steps in ``accounts.pipeline`` check that
record when the provider sends the browser back.
"""

from __future__ import annotations

import time

from django.http import HttpRequest

from . import flow_state, sudo
from .exceptions import SudoRequired
from .flow_state import AuthFlow, FlowPurpose


def flow_purpose(request: HttpRequest, *, requested: str | None) -> FlowPurpose:
    """What a begin POST starts: a sign-in when signed out; a re-authentication or a merge proof
    when asked for; otherwise linking another account, which needs sudo mode (``SudoRequired``)."""
    if not request.user.is_authenticated:
        return "signin"
    if requested == "reauth":
        return "reauth"
    if requested == "merge_proof":
        return "merge_proof"
    if not sudo.is_recent(request):
        raise SudoRequired("Please confirm it's you before connecting another account.")
    return "link"


def start_flow(
    request: HttpRequest,
    *,
    backend_name: str,
    purpose: FlowPurpose,
    next_url: str,
    scopes: list[str] | None = None,
    fresh: bool = False,
    separate_profile: bool = False,
) -> None:
    """Bind the provider round trip about to start to this session and this user.

    The callback's pipeline compares the finishing user with ``user_id`` and refuses a mismatch;
    social-auth's one-time ``state`` binds it to this browser session.
    """
    flow = AuthFlow(
        user_id=request.user.pk if request.user.is_authenticated else None,
        purpose=purpose,
        next=next_url,
        scopes=list(scopes or []),
        started_at=int(time.time()),
        # Read by the backends' auth_extra_arguments to force a fresh sign-in at the provider.
        fresh=fresh or purpose in ("reauth", "merge_proof"),
    )
    pending = flow_state.pending_link(request.session)
    if separate_profile and pending is not None and pending.provider == backend_name:
        # The person answered "create a separate profile" for exactly this provider account.
        flow.separate_uid = [backend_name, pending.uid]
    flow_state.save_auth_flow(request.session, backend_name=backend_name, flow=flow)
