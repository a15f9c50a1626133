from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and identities"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers checks and signal receivers)
