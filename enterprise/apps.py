"""The app's configuration (`AppConfig`)."""

from django.apps import AppConfig


class EnterpriseConfig(AppConfig):
    name = "enterprise"
    verbose_name = "Enterprise (SAML) connections"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the libxml2 agreement check)
