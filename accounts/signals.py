"""The accounts app's signal receivers (sign-in and sign-out keep the session list and sudo mode).

Other apps take part in accounts' work (a merge, the connections page ...) through its adapter
(``accounts.adapter``), not through signals.
"""

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from . import sessions, sudo
from .models import UserSession


@receiver(user_logged_in)
def mark_fresh_sign_in(sender, request, user, **kwargs) -> None:
    """A password sign-in counts as a fresh sign-in for sudo mode, like a provider one."""
    if request is not None and hasattr(request, "session"):
        sudo.mark_authenticated(request)
        sessions.remember_session(request=request, user=user)


@receiver(user_logged_out)
def forget_session(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session") and request.session.session_key:
        UserSession.objects.filter(session_key=request.session.session_key).delete()
