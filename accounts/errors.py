"""Plain-language messages for refused sign-ins and links, by social-auth error code."""

from __future__ import annotations

from social_core.exceptions import SocialAuthBaseException

from .providers import provider_title

_RESTART = "Please start again from this page."

MESSAGES: dict[str, str] = {
    "authorization_declined": "You cancelled at {provider}, so nothing was linked or signed in.",
    "state_mismatch": "That {provider} sign-in could not be matched to this browser session "
    "(it may have been used already or started elsewhere). " + _RESTART,
    "session_context_missing": "That {provider} sign-in could not be matched to this browser session "
    "(it may have been used already or started elsewhere). " + _RESTART,
    "missing_parameter": "That {provider} sign-in came back incomplete (part of its answer was missing), "
    "so it was refused and nothing changed. " + _RESTART,
    "user_mismatch": "That {provider} sign-in was started by a different user than the one signed in now, "
    "so it was refused and nothing was linked. " + _RESTART,
    "link_flow_expired": "That {provider} link was started too long ago to finish now, so nothing was "
    "linked. Confirm it's you and connect it again.",
    "identity_in_use": "That {provider} account is already linked to another profile on this site, so it "
    "was not linked here. To use it here, sign out, sign in with it, and remove it from that profile first.",
    "reauth_unknown_identity": "That {provider} account is not linked to your profile. To confirm it's you, "
    "sign in with one of the accounts listed below.",
    "merge_unknown_identity": "That {provider} account is not linked to any profile here, so there is "
    "nothing to merge. You can connect it to this profile instead.",
    "merge_same_profile": "That {provider} account is already on this profile. To merge, sign in with an "
    "account of the other profile.",
    "merge_inactive_profile": "The profile that {provider} account belongs to was already merged or "
    "deactivated, so nothing was changed.",
    "merge_flow_expired": "That merge took too long or was not started from this profile. Please start the "
    "merge again from the connections page.",
    "invalid_signature": "{provider}'s answer was not signed by {provider}'s keys, so it was refused and "
    "nothing changed. " + _RESTART,
    "invalid_claim": "{provider}'s answer did not check out (it was meant for another site or session, "
    "or is out of date), so it was refused and nothing changed. " + _RESTART,
    "missing_claim": "{provider}'s answer was missing something this site needs, so it was refused. "
    + _RESTART,
    "response_expired": "{provider}'s answer had already expired. " + _RESTART,
    "response_not_yet_valid": "{provider}'s answer is dated in the future (a clock may be wrong). "
    "Please try again in a minute.",
    "malformed_response": "{provider} sent an answer this site could not read. Please try again later.",
    "invalid_setting": "Signing in with {provider} is not set up correctly on this site; its staff "
    "have been told.",
    "nonce_mismatch": "The {provider} response could not be matched to this sign-in. " + _RESTART,
    "timeout": "{provider} did not answer in time. Please try again in a minute.",
    "unavailable": "{provider} is unavailable right now. Please try again in a few minutes.",
    "connection_failed": "{provider} could not be reached. Please try again in a few minutes.",
    "rate_limited": "{provider} is limiting requests right now. Please try again in a few minutes.",
    "disconnect_disallowed": "This is your only way to sign in. Connect another account first.",
    "issuer_mismatch": "That {provider} account was linked here through a different sign-in service than "
    "the one {provider} uses now, so it was refused and nothing changed. If your organisation moved, "
    "ask this site's staff to confirm the move.",
    "profile_inactive": "That profile was merged into another one or closed, so nothing was linked to "
    "it or signed in with {provider}. Sign in to the profile you use now and connect the account there.",
    "authorization_code_rejected": "{provider} did not accept the sign-in code (it may have expired). "
    + _RESTART,
}


def message_for(error: SocialAuthBaseException) -> str:
    backend = getattr(error, "backend", None)
    provider = provider_title(getattr(backend, "name", "")) if backend is not None else "The provider"
    template = MESSAGES.get(error.code)
    if template is None:
        return f"Signing in with {provider} failed ({error.code.replace('_', ' ')}). " + _RESTART
    return template.format(provider=provider)
