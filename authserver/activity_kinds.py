"""The activity kinds that authserver records (registered with ``activity.kinds`` in ``ready()``).

Provider tokens handed to an application are recorded with the vault's own ``token_issued`` kind
(with ``client_id`` in the data), so they sit in the same trail as agent keys' hand-outs.
"""

from django.db import models


class AuthserverKind(models.TextChoices):
    APP_AUTHORIZED = "app_authorized", "Application authorized"
    APP_ACCESS_REMOVED = "app_access_removed", "Application access removed"
