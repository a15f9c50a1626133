"""WSGI entry point for gunicorn and other WSGI servers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linking_site.settings")

application = get_wsgi_application()

# A misconfigured OpenID Connect provider stops the server here instead of at someone's sign-in.
from accounts.oidc.checks import validate_at_startup  # noqa: E402

validate_at_startup()

# Records staged in Redis (token hand-outs) are moved into the activity table by a thread of each
# site process, started by its first staged record (vault/staged_records.py).
from vault.staged_records import drain_in_background  # noqa: E402

drain_in_background()
