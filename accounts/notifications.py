"""Email notices about changes to a profile's sign-in methods. Never include tokens or keys."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from .models import User
from .providers import provider_title

logger = logging.getLogger(__name__)


def send_notice(*, user: User, subject: str, template: str, context: dict) -> None:
    if not user.email:
        return
    body = render_to_string(template, {"user": user, **context})
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    except Exception:  # a mail outage must not undo a completed change
        logger.exception("Could not send %r to user %s", subject, user.pk)


def identity_linked(*, user: User, identity) -> None:
    details = getattr(identity, "details", None)
    send_notice(
        user=user,
        subject=f"A {provider_title(identity.provider)} account was linked to your profile",
        template="email/identity_linked.txt",
        context={
            "provider": provider_title(identity.provider),
            "account_name": details.account_name if details else identity.uid,
        },
    )


def identity_removed(*, user: User, provider: str, uid: str, account_name: str) -> None:
    send_notice(
        user=user,
        subject=f"A {provider_title(provider)} account was removed from your profile",
        template="email/identity_removed.txt",
        context={"provider": provider_title(provider), "account_name": account_name or uid},
    )


def profiles_merged(*, into: User, source: User) -> None:
    """Both addresses hear about a merge: the one that stays and the one merged away."""
    context = {"into": into, "source": source}
    send_notice(
        user=into,
        subject="Another profile was merged into yours",
        template="email/profiles_merged.txt",
        context=context,
    )
    if source.email and source.email != into.email:
        send_notice(
            user=source,
            subject="Your profile was merged into another one",
            template="email/profiles_merged.txt",
            context=context,
        )
