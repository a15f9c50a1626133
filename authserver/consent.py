"""Consent: what a person granted an application, remembered per application and scope set.

``grant`` records a click on the consent page (and mails the person on an application's first
consent); ``is_remembered`` lets a repeat authorization through without asking, unless it asks for
more; ``extend`` adds what the person approved later on a connect request; ``remove_access`` ends
everything at once: the consent, and every access and refresh token the application holds.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from accounts.models import User
from accounts.notifications import send_notice
from activity import recording

from . import clients
from .activity_kinds import AuthserverKind
from .models import Consent
from .scopes import allowed_provider_scopes, connection_of, plain_words


class NoSuchAccess(Exception):
    """The application has no access of this person's to remove."""


def provider_scopes_for(application: Application, scopes: Iterable[str]) -> dict[str, list[str]]:
    """Per connection asked for, the provider scopes the consent covers (staff's limit, or none)."""
    return {
        connection: allowed_provider_scopes(application, connection)
        for connection in filter(None, (connection_of(scope) for scope in scopes))
    }


def is_remembered(*, user: User, application: Application, scopes: Iterable[str]) -> bool:
    found = Consent.objects.filter(user=user, application=application).first()
    if found is None:
        return False
    wanted = provider_scopes_for(application, scopes)
    same_limits = all(found.provider_scopes.get(name) == limit for name, limit in wanted.items())
    return set(scopes) <= set(found.scopes) and same_limits


def grant(*, user: User, application: Application, scopes: Iterable[str], request: HttpRequest) -> Consent:
    """The person clicked "Allow": remember the scopes (adding to what was granted before)."""
    scopes = list(scopes)
    with transaction.atomic():
        found, created = Consent.objects.select_for_update().get_or_create(
            user=user, application=application, defaults={"scopes": []}
        )
        found.scopes = sorted(set(found.scopes) | set(scopes))
        found.provider_scopes = {**found.provider_scopes, **provider_scopes_for(application, scopes)}
        found.save()
        name = clients.title(application)
        recording.record(
            kind=AuthserverKind.APP_AUTHORIZED,
            user=user,
            request=request,
            message=f"You allowed {name}: {'; '.join(plain_words(scopes, found.provider_scopes))}"[:500],
            data={"client_id": application.client_id, "app": name, "scopes": scopes},
        )
    if created:
        _mail_first_consent(user, application, found)
    return found


def _mail_first_consent(user: User, application: Application, found: Consent) -> None:
    send_notice(
        user=user,
        subject=f"{clients.title(application)} can now act for you",
        template="authserver/email/app_authorized.txt",
        context={
            "app": clients.title(application),
            "lines": plain_words(found.scopes, found.provider_scopes),
            "apps_url": f"{settings.SITE_URL}{reverse('authserver:apps')}",
        },
    )


def extend(*, consent: Consent, connection: str, provider_scopes: Iterable[str]) -> Consent:
    """The person approved an application's connect request: its consent covers that now too."""
    with transaction.atomic():
        found = Consent.objects.select_for_update().get(pk=consent.pk)
        scope = f"vault:{connection}"
        found.scopes = sorted({*found.scopes, scope})
        limit = found.provider_scopes.get(connection)
        if limit:  # a limited consent grows by what was approved; an unlimited one stays so
            found.provider_scopes = {**found.provider_scopes, connection: sorted({*limit, *provider_scopes})}
        elif limit is None:
            found.provider_scopes = {**found.provider_scopes, connection: sorted(set(provider_scopes))}
        found.save()
    return found


def remove_access(*, user: User, application_id: int, request: HttpRequest | None = None) -> Application:
    """Revoke the application's consent and its tokens now: the next exchange or refresh fails."""
    with transaction.atomic():
        found = Consent.objects.select_for_update().filter(user=user, application_id=application_id).first()
        if found is None:
            raise NoSuchAccess()
        application = found.application
        now = timezone.now()
        RefreshToken.objects.filter(user=user, application=application, revoked__isnull=True).update(
            revoked=now, access_token=None
        )
        AccessToken.objects.filter(user=user, application=application).delete()
        Grant.objects.filter(user=user, application=application).delete()
        found.delete()
        recording.record(
            kind=AuthserverKind.APP_ACCESS_REMOVED,
            user=user,
            request=request,
            message=f"You removed {clients.title(application)}'s access",
            data={"client_id": application.client_id, "app": clients.title(application)},
        )
    return application
