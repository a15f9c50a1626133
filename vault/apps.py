from django.apps import AppConfig
from django.core import checks

from activity import kinds

from .activity_kinds import VaultKind


class VaultConfig(AppConfig):
    name = "vault"
    verbose_name = "Token vault"

    def ready(self) -> None:
        from . import key_checks, plaintext, signals  # noqa: F401  (signals registers its receivers)

        kinds.register(VaultKind)

        checks.register(key_checks.check_keys, checks.Tags.security)
        # Deploy-only: they read (and decrypt a sample of) the database.
        checks.register(key_checks.check_keys_decrypt, checks.Tags.security, deploy=True)
        checks.register(plaintext.check_plaintext_extra_data, checks.Tags.security, deploy=True)
