"""gunicorn settings for this site, read by every gunicorn started in the repository's folder.

gunicorn loads ``./gunicorn.conf.py`` on its own, so ``make``, the deployment tests, the benchmark
and the commands in docs/deploy.md all get these. Command-line options still win.

The access log (on with ``--access-logfile``) leaves out the query string and the referrer: a
provider's callback ``/complete/<provider>/?code=…&state=…`` carries a live authorization code,
and the page before it (a provider's authorize URL) its ``state``. ``%(U)s`` is the path alone.
Error-log lines that name a request URL lose their query string too.
"""

from gunicorn.glogging import Logger

from accounts.logfilters import StripQueryStrings

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'


class QueryFreeLogger(Logger):
    """gunicorn's logger with query strings removed from error-log lines."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.addFilter(StripQueryStrings())


logger_class = QueryFreeLogger
