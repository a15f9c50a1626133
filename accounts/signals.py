"""Signals of the accounts app and its receivers.

``profiles_merging`` is how other apps (the vault) take part in a merge without ``accounts``
importing them: it is sent inside the merge's transaction, before anything is deleted, and a
receiver that raises aborts the whole merge (nothing changes). Arguments:

- ``source``: the profile being merged away (it becomes a tombstone),
- ``into``: the profile that stays,
- ``moved_identity_ids``: identities (``UserSocialAuth`` ids) that now belong to ``into``,
- ``dropped_identity_ids``: identities of ``source`` that will be deleted right after,
- ``actor``: the staff member doing it, or None when the person did it.
"""

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import Signal, receiver

from . import sudo
from .models import UserSession

profiles_merging = Signal()


@receiver(user_logged_in)
def mark_fresh_sign_in(sender, request, user, **kwargs) -> None:
    """A password sign-in counts as a fresh sign-in for sudo mode, like a provider one."""
    if request is not None and hasattr(request, "session"):
        sudo.mark_authenticated(request)
        if request.session.session_key:
            UserSession.objects.update_or_create(
                session_key=request.session.session_key, defaults={"user": user}
            )


@receiver(user_logged_out)
def forget_session(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session") and request.session.session_key:
        UserSession.objects.filter(session_key=request.session.session_key).delete()
