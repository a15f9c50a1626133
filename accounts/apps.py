from django.apps import AppConfig

from activity import kinds

from .activity_kinds import AccountKind


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and identities"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers checks and signal receivers)
        from .oidc import checks as oidc_checks  # noqa: F401  (registers the oidc checks)

        kinds.register(AccountKind)
