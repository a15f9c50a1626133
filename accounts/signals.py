"""Signal receivers: a password sign-in counts as a fresh sign-in for sudo mode, like a provider one."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from . import sudo


@receiver(user_logged_in)
def mark_fresh_sign_in(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        sudo.mark_authenticated(request)
