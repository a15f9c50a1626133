"""What every social-auth backend of this site shares, whatever its protocol.

``ProviderProfileMixin`` (the per-provider profile rules, the one-transaction pipeline, handing
unkept tokens over for revocation) and ``PkceS256Mixin`` live here, apart from the concrete
backends, so that ``accounts.backends`` (Google, GitHub) and ``accounts.oidc.backend`` (OpenID
Connect) both import them and neither imports the other.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from django.contrib.auth import get_user_model
from django.db import transaction
from django.views.decorators.debug import sensitive_variables
from social_core.backends.oauth import BaseOAuth2PKCE
from social_core.exceptions import SocialAuthBaseException

from . import flow_state, refusals
from .adapter import get_adapter


def lower_domain(email: str) -> str:
    """Lower-case the domain only: the local part is the provider's business (RFC 5321)."""
    local, sep, domain = email.strip().rpartition("@")
    if not sep:
        return email.strip()
    return f"{local}@{domain.lower()}"


class ProviderProfileMixin:
    """What every backend here answers about a completed sign-in's profile."""

    #: Query arguments that make the provider ask for a fresh sign-in (re-authentication).
    FRESH_LOGIN_ARGUMENTS: dict[str, str] = {}

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        """The account's email and whether the provider verified it, by this provider's rule."""
        raise NotImplementedError

    def account_name(self, response: dict[str, Any]) -> str:
        return str(response.get("name") or response.get("email") or "")

    def avatar_url(self, response: dict[str, Any]) -> str:
        return str(response.get("picture") or "")

    def state_consumed(self) -> bool:
        """True once this callback's ``state`` was the pending flow's and has been used up.

        A callback whose state is not the pending one (a forged GET to ``/complete/...``) leaves
        the pending flow alone (``AuthFlowErrorMiddleware``), so the real callback still completes.
        """
        return isinstance(getattr(self, "_oauth2_transaction", None), dict)

    def process_error(self, data: Any, *, stage: Any = "callback") -> None:
        # social-core checks an error callback (``error=access_denied``) before it looks at the
        # state, so the state would survive the error and a fresh code could be redeemed with it
        # later. Use the state up first (it refuses a state that is not the pending one).
        if stage == "callback" and (
            self.get_provider_error(data, stage=stage) is not None or "denied" in data  # type: ignore[attr-defined]
        ):
            self.validate_state()  # type: ignore[attr-defined]
        super().process_error(data, stage=stage)  # type: ignore[misc]

    @sensitive_variables()
    def do_auth(self, access_token: str, *args: Any, **kwargs: Any) -> Any:
        """Run the profile lookup and the pipeline; tokens the flow does not keep get revoked.

        The code has been redeemed by now. When the pipeline refuses (its transaction rolls back)
        or stops at a question without linking, the provider's fresh tokens are handed to be
        revoked, after the rollback so that survives (``accounts.refusals``).
        """
        response = kwargs.get("response") or {}
        issued = {key: response[key] for key in refusals.TOKEN_RESPONSE_KEYS if key in response}
        issued.setdefault("access_token", access_token)
        starting_user = kwargs.get("user")
        try:
            result = super().do_auth(access_token, *args, **kwargs)  # type: ignore[misc]
        except SocialAuthBaseException as error:
            self._after_refusal(response, issued, starting_user, reason=str(error.code))
            raise
        except Exception:
            self._after_refusal(response, issued, starting_user, reason="error")
            raise
        if not isinstance(result, get_user_model()) and "access_token" in response:
            # Stopped at a question (an existing profile, a merge proof) before the vault's step
            # took the tokens (it removes them from ``response``): nothing keeps these tokens, and
            # the next round trip gets new ones.
            self._after_refusal(response, issued, starting_user, reason="not_kept")
        return result

    @sensitive_variables()
    def _after_refusal(
        self, response: dict[str, Any], issued: dict[str, Any], starting_user: Any, *, reason: str
    ) -> None:
        try:
            uid = str(self.get_user_id(self.get_user_details(response), response) or "")  # type: ignore[attr-defined]
        except Exception:  # the profile call itself failed: no subject to name
            uid = ""
        owner = starting_user if getattr(starting_user, "is_authenticated", False) else None
        request = getattr(self.strategy, "request", None)  # type: ignore[attr-defined]
        if reason == "identity_in_use" and uid:
            refusals.identity_in_use_attempt(
                provider=self.name,  # type: ignore[attr-defined]
                uid=uid,
                attempted_by=owner,
                request=request,
            )
        refusals.hand_over_unkept_tokens(
            provider=self.name,  # type: ignore[attr-defined]
            uid=uid,
            owner=owner,
            tokens=issued,
            reason=reason,
        )

    def pipeline(self, pipeline: list[str], pipeline_index: int = 0, *args: Any, **kwargs: Any) -> Any:
        # Every provider call has happened by the time the pipeline runs, so it can be one
        # transaction: a refused or failed step leaves no user, identity or token half-made.
        with transaction.atomic():
            return super().pipeline(pipeline, pipeline_index, *args, **kwargs)  # type: ignore[misc]

    def get_scope(self) -> list[str]:
        # Scopes asked for by the flow in progress (a "Connect with these scopes" button or an
        # agent's connect request) come on top of the configured ones.
        scope = list(super().get_scope())  # type: ignore[misc]
        request = getattr(self.strategy, "request", None)  # type: ignore[attr-defined]
        if request is not None and hasattr(request, "session"):
            flow = flow_state.auth_flow(request.session, self.name)  # type: ignore[attr-defined]
            wanted = list(flow.scopes) if flow is not None else []
            owner = (
                get_user_model().objects.filter(pk=flow.user_id).first() if flow and flow.user_id else None
            )
            if owner is not None:
                # A link or reconnect by a known person asks again for what they already granted:
                # otherwise a provider that does not accumulate grants (OIDC) narrows the token.
                wanted += get_adapter(request).granted_scopes(owner, self.name)  # type: ignore[attr-defined]
            scope += [s for s in wanted if isinstance(s, str) and s not in scope]
        return scope

    def get_scope_argument(self) -> dict[str, str]:
        # social-core un-percent-encodes the whole authorize query when REDIRECT_STATE is off
        # (``url_add_parameters(..., _unquote_query=True)``): an RFC 6749 scope name with "+", "#",
        # "&" or "%" reached the provider as other scopes, so an agent's connect request for it could
        # never complete (issue 13). Encoded once more here, the unquoting leaves it encoded once.
        argument = dict(super().get_scope_argument())  # type: ignore[misc]
        if self.REDIRECT_STATE:  # type: ignore[attr-defined]
            return argument
        return {name: quote_plus(value, safe=":/,") for name, value in argument.items()}

    def auth_extra_arguments(self) -> dict[str, str]:
        extra = dict(super().auth_extra_arguments())  # type: ignore[misc]
        flow = flow_state.auth_flow(self.strategy.session, self.name)  # type: ignore[attr-defined]
        if flow is not None and flow.fresh:
            extra.update(self.FRESH_LOGIN_ARGUMENTS)
        return extra


class PkceS256Mixin(BaseOAuth2PKCE):
    """PKCE S256 (RFC 7636) on a provider whose social-core class is plain OAuth2.

    social-core's own ``BaseOAuth2PKCE`` does the work (the verifier is kept in the flow's one-time
    state transaction, the challenge goes in the authorize URL, the verifier in the token request);
    this only pins it on and to S256, whatever the environment says: a stolen code is then useless
    without the browser session that started the flow.
    """

    DEFAULT_USE_PKCE = True
    PKCE_DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    _PINNED_PKCE_SETTINGS = {"USE_PKCE": True, "PKCE_CODE_CHALLENGE_METHOD": "S256"}

    def setting(self, name: str, default: Any = None) -> Any:
        if name in self._PINNED_PKCE_SETTINGS:
            return self._PINNED_PKCE_SETTINGS[name]
        return super().setting(name, default)
