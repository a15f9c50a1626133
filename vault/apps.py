from django.apps import AppConfig
from django.core import checks


class VaultConfig(AppConfig):
    name = "vault"
    verbose_name = "Token vault"

    def ready(self) -> None:
        from . import keys, signals  # noqa: F401  (signals registers its receivers)

        checks.register(keys.check_keys, checks.Tags.security)
        # Deploy-only: they read (and decrypt a sample of) the database.
        checks.register(keys.check_keys_decrypt, checks.Tags.security, deploy=True)
        from . import plaintext

        checks.register(plaintext.check_plaintext_extra_data, checks.Tags.security, deploy=True)
