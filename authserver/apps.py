"""The app's configuration (`AppConfig`)."""

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed
from django.db.models.signals import post_migrate
from oauth2_provider.settings import oauth2_settings

from activity import kinds

from .activity_kinds import AuthserverKind


def _issuer_follows_site_url(*, setting: str, value: object = None, **kwargs: object) -> None:
    """The issuer is SITE_URL exactly; when a test moves SITE_URL (a live server), the toolkit's
    cached settings follow, so discovery, ``iss`` and ID tokens name the same issuer."""
    if setting != "SITE_URL":
        return
    oauth2_settings.reload()
    oauth2_settings._user_settings = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": settings.SITE_URL}


class AuthserverConfig(AppConfig):
    name = "authserver"
    verbose_name = "Authorization server"

    def ready(self) -> None:
        kinds.register(AuthserverKind)
        from . import checks  # noqa: F401  (registers the system checks)

        setting_changed.connect(_issuer_follows_site_url, dispatch_uid="authserver-issuer")
        from .applications import ensure_dev_mcp_server

        # Development (DEBUG and the sandbox on): after `migrate`, the example MCP server's application.
        post_migrate.connect(
            lambda **kwargs: ensure_dev_mcp_server(),
            sender=self,
            weak=False,
            dispatch_uid="authserver-dev-mcp",
        )
