"""Email notices about changes to a profile's sign-in methods. Never include tokens or keys.

Notices go only to an address a provider verified for this person (a sign-in may carry any
address its owner typed). The site's mail comes from its real sender, so text a person chose (a
key's name, an account name) never goes into a subject, and in a body it is quoted as their
words (``named “…”``), on one line; plain-text mail is rendered without HTML escaping.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.mail import send_mail
from django.template import Context
from django.template.loader import get_template

from .models import IdentityDetails, User
from .providers import provider_title

logger = logging.getLogger(__name__)

_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def person_text(value: object, *, limit: int = 100) -> str:
    """Text a person chose, fit to quote in a mail body: one line, no control characters, bounded."""
    text = _CONTROL_OR_SPACE.sub(" ", str(value or "")).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def notice_address(user: User) -> str:
    """The profile's address if a provider verified it for one of this person's accounts, else "".

    A merged-away profile's accounts now belong to the profile it was merged into, so those count.
    """
    if not user.email:
        return ""
    owners = [user.pk] + ([user.merged_into_id] if user.merged_into_id else [])
    verified = IdentityDetails.objects.filter(
        identity__user_id__in=owners, email__iexact=user.email, email_verified=True
    ).exists()
    return user.email if verified else ""


def send_notice(*, user: User, subject: str, template: str, context: dict) -> None:
    """Mail ``user`` a plain-text notice; ``subject`` is the site's words only."""
    address = notice_address(user)
    if not address:
        return
    # Plain text: autoescape off, or a key named <b> would arrive as &lt;b&gt;.
    body = get_template(template).template.render(Context({"user": user, **context}, autoescape=False))
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])
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
            "account_name": person_text(details.account_name if details else identity.uid),
        },
    )


def identity_removed(*, user: User, provider: str, uid: str, account_name: str) -> None:
    send_notice(
        user=user,
        subject=f"A {provider_title(provider)} account was removed from your profile",
        template="email/identity_removed.txt",
        context={"provider": provider_title(provider), "account_name": person_text(account_name or uid)},
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


def identity_link_refused(*, owner: User, provider: str, account_name: str) -> None:
    """Someone signed in to another profile tried to link ``owner``'s account; it was refused."""
    send_notice(
        user=owner,
        subject=f"Someone tried to link your {provider_title(provider)} account to another profile",
        template="email/identity_link_refused.txt",
        context={"provider": provider_title(provider), "account_name": person_text(account_name)},
    )
