"""WSGI entry point for the benchmark's gunicorn servers.

The site's own application, wrapped so that every response names the worker process that served it
(``X-Bench-Worker``): the concurrency check uses it to show that both gunicorn workers took part.
The wrapper is the same for every view, so it cancels out of every ratio.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.core.wsgi import get_wsgi_application

_application = get_wsgi_application()

# As the site's own entry point (linking_site/wsgi.py): staged records are moved by the site.
from vault.staged_records import drain_in_background  # noqa: E402

drain_in_background()


def application(environ, start_response):
    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Bench-Worker", str(os.getpid()))], exc_info)

    return _application(environ, start)
