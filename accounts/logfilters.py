"""A logging filter that keeps query strings (OAuth ``code`` and ``state``) out of request logs.

A provider sends the browser back to ``/complete/<provider>/?code=…&state=…``; a request log line
with that query string hands a live authorization code to whoever reads the log. Wired in
``LOGGING`` (settings) on every handler, and on the development server's ``django.server`` logger.
gunicorn's access log has its own format without the query (``gunicorn.conf.py``).
"""

from __future__ import annotations

import logging
import re

# A path followed by a query string: "/complete/github/?code=x&state=y" -> "/complete/github/".
# Stops at whitespace or a quote, so "GET /p?q HTTP/1.1" keeps its method and protocol.
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


def strip_query_strings(text: str) -> str:
    return _QUERY.sub(r"\1", text)


class StripQueryStrings(logging.Filter):
    """Rewrites each record's message with every URL's query string removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's own business
            return True
        cleaned = strip_query_strings(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
