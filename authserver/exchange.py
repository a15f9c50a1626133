"""RFC 8693 token exchange: a site-issued access or refresh token for a provider token from the vault.

The toolkit has no token-exchange grant; this is it. Who may exchange: the application the subject
token was issued to, or the resource server whose resource is the token's audience (an MCP server
exchanging its caller's token). What for: only what the person consented to for that application
(``authserver.consent``); asking beyond it answers ``insufficient_scope`` with a connect request
that, once the person approves it, extends the consent. Every hand-out is recorded in activity
like an agent key's, with the application's ``client_id``.

Rate limits are the agent keys' (``vault.ratelimit``): each exchange counts against the calling
application (the ``key`` bucket, keyed by the application) and the person (``user``, shared with
their agent keys); a refused client or subject token counts against the address (``auth_failure``),
past which refusals are answered 429. As for keys, a good caller is never refused for its
address's failures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.models import AccessToken, Application, RefreshToken

from accounts.models import User
from accounts.providers import provider_title
from activity import recording
from vault import connect, errors, ratelimit
from vault.access import AccessToken as ProviderToken
from vault.access import get_access_token
from vault.activity_kinds import VaultKind
from vault.issuing import ACTIONABLE, identity_matching_hint
from vault.models import ConnectRequest
from vault.scopes import ScopeLimit, missing_scopes

from . import clients
from . import consent as consents
from .models import ApplicationPolicy, Consent
from .scopes import vault_scope

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"


class ExchangeRefused(Exception):
    """An RFC 6749 / RFC 8693 error of the exchange itself (not of the vault): code and status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        self.body = {"error": error, "error_description": description}
        self.status = status
        super().__init__(description)


@dataclass(frozen=True)
class Subject:
    """What a subject token stands for: a person, the application it was issued to, its audience."""

    user: User
    application: Application
    audiences: tuple[str, ...]


@sensitive_variables("token")
def find_subject(*, token: str, token_type: str) -> Subject:
    if token_type not in (ACCESS_TOKEN_TYPE, REFRESH_TOKEN_TYPE):
        raise ExchangeRefused(
            "invalid_request", f"subject_token_type must be {ACCESS_TOKEN_TYPE} or …:refresh_token."
        )
    checksum = hashlib.sha256((token or "").encode()).hexdigest()
    if token_type == ACCESS_TOKEN_TYPE:
        row = (
            AccessToken.objects.select_related("user", "application").filter(token_checksum=checksum).first()
        )
        usable = row is not None and not row.is_expired()
    else:
        row = (
            RefreshToken.objects.select_related("user", "application")
            .filter(token_checksum=checksum, revoked__isnull=True)
            .first()
        )
        usable = row is not None
    if not usable or row.user is None or row.application is None or not row.user.is_active:
        raise ExchangeRefused("invalid_grant", "The subject token is not valid: unknown, expired or revoked.")
    return Subject(user=row.user, application=row.application, audiences=tuple(row.resource or ()))


def count_refusal(*, ip_address: str | None) -> None:
    """A refused client or subject token, counted against its address: ``RateLimited`` past the
    address's limit, so guessing costs a client what it costs an agent key."""
    verdict = ratelimit.note_failure(ip_address=ip_address)
    if not verdict.allowed:
        raise errors.RateLimited(
            "Too many refused exchanges from this address.", retry_after=verdict.retry_after
        )


def admit(*, caller: Application, user: User, ip_address: str | None) -> None:
    """Count one exchange against the calling application's and the person's limits."""
    try:
        # "application:<pk>": the key bucket's limits in windows of its own (agent keys are ints).
        ratelimit.admit(key_id=f"application:{caller.pk}", user_id=user.pk, ip_address=ip_address)
    except errors.RateLimited as error:
        raise errors.RateLimited(
            "This application, or the person's agents and applications together, asked too often.",
            retry_after=error.retry_after,
        ) from error


def normalised(audiences: tuple[str, ...] | list[str]) -> set[str]:
    """Audiences compared without a trailing slash: clients differ in writing one."""
    return {audience.rstrip("/") for audience in audiences}


def check_caller(subject: Subject, caller: Application) -> None:
    """The token's own application, or the resource server it was issued for; nobody else."""
    if caller.pk == subject.application.pk:
        return
    policy = ApplicationPolicy.objects.filter(application=caller).first()
    if policy is not None and policy.resource and policy.resource in normalised(subject.audiences):
        return
    raise ExchangeRefused(
        "unauthorized_client",
        "This client may not exchange that token: it was issued to another application for another audience.",
    )


def _apply_approved_requests(found: Consent, *, connection: str) -> Consent:
    """Connect requests of this application that the person approved since: the consent grows."""
    approved = ConnectRequest.objects.filter(
        user=found.user,
        client_id=found.application.client_id,
        provider=connection,
        status=ConnectRequest.Status.COMPLETED,
        completed_at__gt=found.updated_at,
    ).order_by("completed_at")
    for request in approved:
        found = consents.extend(consent=found, connection=connection, provider_scopes=request.scopes)
    return found


def _beyond_consent(found: Consent, *, connection: str, requested: list[str]) -> list[str] | None:
    """None when the consent covers the request; else what is missing (empty: the whole connection)."""
    if vault_scope(connection) not in found.scopes:
        return list(requested)
    limit = found.provider_scopes.get(connection) or []
    if not limit:
        return None
    missing = missing_scopes(connection, granted=limit, requested=requested)
    return missing or None


def _fix_details(subject: Subject, *, connection: str, scopes: list[str], reason: str) -> dict[str, object]:
    row = connect.request_for_application(
        user=subject.user,
        client_id=subject.application.client_id,
        app_name=clients.title(subject.application),
        connection=connection,
        scopes=scopes,
        reason=reason,
    )
    return {
        "authorize_url": connect.page_url(row),
        "connect_request": row.id,
        "required_scopes": scopes,
        "connection": connection,
    }


@sensitive_variables("subject_token", "token")
def exchange(
    *,
    caller: Application,
    subject_token: str,
    subject_token_type: str,
    connection: str,
    scopes: list[str],
    login_hint: str = "",
    resource: str = "",
    ip_address: str | None = None,
) -> ProviderToken:
    """The provider token the subject token's person consented to, or the error that says why not."""
    try:
        subject = find_subject(token=subject_token, token_type=subject_token_type)
        check_caller(subject, caller)
    except ExchangeRefused:
        count_refusal(ip_address=ip_address)
        raise
    admit(caller=caller, user=subject.user, ip_address=ip_address)
    if resource and resource.rstrip("/") not in normalised(subject.audiences):
        # RFC 8693 2.2.2: a ``resource`` the subject token was not issued for.
        raise ExchangeRefused("invalid_target", "The subject token was not issued for that resource.")
    found = (
        Consent.objects.select_related("user", "application")
        .filter(user=subject.user, application=subject.application)
        .first()
    )
    if found is None:
        raise ExchangeRefused(
            "invalid_grant", "The person has not allowed this application, or removed its access."
        )
    found = _apply_approved_requests(found, connection=connection)
    beyond = _beyond_consent(found, connection=connection, requested=scopes)
    if beyond is not None:
        title = provider_title(connection)
        error = errors.InsufficientScope(
            f"The person has not allowed this application to get {title} tokens"
            + (f" with {' '.join(beyond)}" if beyond else "")
            + ": they can approve it at authorize_url.",
            missing=beyond,
            connection=connection,
        )
        error.details = _fix_details(subject, connection=connection, scopes=beyond, reason=error.code)
        raise error
    account = (
        identity_matching_hint(user_id=subject.user.pk, provider=connection, hint=login_hint)
        if login_hint
        else None
    )
    if login_hint and account is None:
        raise errors.ConnectionRequired(
            f"No linked {connection} account matches login_hint.", connection=connection
        )
    limit = found.provider_scopes.get(connection) or []
    try:
        token = get_access_token(
            subject.user,
            connection,
            scopes=scopes,
            account=account,
            limit=ScopeLimit(scopes=tuple(limit)) if limit else None,
        )
    except ACTIONABLE as error:
        wanted = sorted(set(scopes) | set(getattr(error, "missing", ())))
        error.details = _fix_details(subject, connection=connection, scopes=wanted, reason=error.code)
        raise
    except errors.ScopeLimitExceeded as error:
        # The vault words it for agent keys; the same rule, said of an application.
        error.message = (
            f"The person allowed this application {provider_title(connection)} tokens with "
            f"{' '.join(limit)} only, the linked account granted more, and "
            f"{provider_title(connection)} cannot narrow a token."
        )
        as_dict = error.as_dict()
        error.details = {name: as_dict[name] for name in ("reason", "allowed_scopes", "scopes_beyond_limit")}
        raise
    _record_hand_out(subject, found, token=token, ip_address=ip_address, caller=caller)
    return token


def _record_hand_out(
    subject: Subject, found: Consent, *, token: ProviderToken, ip_address: str | None, caller: Application
) -> None:
    name = clients.title(subject.application)
    with transaction.atomic():
        Consent.objects.filter(pk=found.pk).update(last_exchange_at=timezone.now())
        recording.record(
            kind=VaultKind.TOKEN_ISSUED,
            user=subject.user,
            provider=token.connection,
            ip_address=ip_address,
            identity_id=token.account,
            message=f"Application {name!r} got a {provider_title(token.connection)} token"
            + (f" for {token.account_name}" if token.account_name else ""),
            data={
                "client_id": subject.application.client_id,
                "app": name,
                "by": caller.client_id,
                "account_name": token.account_name,
                "scopes": list(token.scopes),
            },
        )
