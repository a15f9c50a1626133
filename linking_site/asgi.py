"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linking_site.settings")

application = get_asgi_application()

# A misconfigured OpenID Connect provider stops the server here instead of at someone's sign-in.
from accounts.oidc.checks import validate_at_startup  # noqa: E402

validate_at_startup()
