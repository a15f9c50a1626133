"""Site-wide security plumbing: secrets kept out of error reports, no-store on signed-in pages,
NUL characters kept away from the database. (The Content-Security-Policy is django-csp's, in
settings.)

Django leaves debug pages unfiltered under ``DEBUG`` ("your site is not safe anyway"), but
``make run`` sets ``DEBUG`` and people paste those pages into issues: the filter here is active
always, and also hides what Django does not know is secret (the ``Authorization`` header, OAuth
``code``/``state``/``code_verifier``, ``subject_token``, cookies). The reporter then removes every
secret value the request carried from the whole report, wherever it was copied to (a local
variable called ``value``, an exception message).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.html import escape
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

# Names (of settings, headers, form and query fields, dict keys, local variables) whose values
# are never shown: Django's list plus OAuth's and ours.
_HIDDEN_NAMES = re.compile(
    "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|SESSION|CSRF|VERIFIER|NONCE|ASSERTION|CREDENTIAL"
    "|JWT|BEARER",
    flags=re.IGNORECASE,
)
# Short names that are secret in OAuth but too short to match as a part of another name.
_HIDDEN_EXACT = frozenset({"code", "state", "id_token", "code_challenge", "saml_response", "samlresponse"})
# Values that are secrets whatever they are called: agent keys and bearer credentials.
_SECRET_VALUES = re.compile(r"lsa_[0-9A-Za-z]{8,}|(?i:bearer)\s+\S+")
SUBSTITUTE = "********************"


def is_hidden_name(name: object) -> bool:
    return isinstance(name, str) and (name.lower() in _HIDDEN_EXACT or bool(_HIDDEN_NAMES.search(name)))


class SecretsFilter(SafeExceptionReporterFilter):
    """``DEFAULT_EXCEPTION_REPORTER_FILTER``: active with ``DEBUG`` on too, and hides by name."""

    hidden_settings = _HIDDEN_NAMES
    cleansed_substitute = SUBSTITUTE

    def is_active(self, request: HttpRequest | None) -> bool:
        return True

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        if is_hidden_name(key):
            return self.cleansed_substitute
        if isinstance(value, str | bytes):
            return _scrub_text(value)
        return super().cleanse_setting(key, value)

    def _cleanse_query(self, values: Any) -> Any:
        cleansed = values.copy()
        for name in cleansed:
            if is_hidden_name(name):
                cleansed.setlist(name, [self.cleansed_substitute])
            else:
                cleansed.setlist(name, [_scrub_text(v) for v in cleansed.getlist(name)])
        return cleansed

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        if request is None:
            return {}
        return self._cleanse_query(super().get_post_parameters(request))

    def get_cleansed_multivaluedict(self, request: HttpRequest | None, multivaluedict: Any) -> Any:
        return self._cleanse_query(super().get_cleansed_multivaluedict(request, multivaluedict))

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> list:
        # Django's answer first (it honours @sensitive_variables), then by name and by value.
        return [
            (name, self._cleanse_variable(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def _cleanse_variable(self, name: str, value: Any) -> Any:
        try:
            return self.cleanse_setting(name, value)
        except Exception as error:  # a lazy object that fails to load (the database is down...)
            return f"{error!r} while evaluating {name}"


class SecretsReporter(ExceptionReporter):
    """``DEFAULT_EXCEPTION_REPORTER``: the query string filtered like the form, and every secret
    value the request carried removed from the finished report (HTML and text)."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if self.request is not None:
            data["request_GET_items"] = self.filter._cleanse_query(self.request.GET).items()
        return data

    def _secrets_of_request(self) -> list[str]:
        request = self.request
        if request is None:
            return []
        found: list[str] = []
        header = request.META.get("HTTP_AUTHORIZATION", "")
        found += [header, header.partition(" ")[2].strip()]
        found += list(request.COOKIES.values())
        for values in (request.GET, _post_if_parsed(request)):
            for name in values:
                if is_hidden_name(name):
                    found += values.getlist(name)
        return sorted({s for s in found if isinstance(s, str) and len(s) >= 6}, key=len, reverse=True)

    def _scrub(self, report: str) -> str:
        for secret in self._secrets_of_request():
            # The HTML page shows values escaped; remove the escaped form too.
            report = report.replace(secret, SUBSTITUTE).replace(escape(secret), SUBSTITUTE)
        return _scrub_text(report)

    def get_traceback_html(self) -> str:
        return self._scrub(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return self._scrub(super().get_traceback_text())


def _post_if_parsed(request: HttpRequest) -> Any:
    """``request.POST`` only when it was already read: a report must not parse a bad body again."""
    post = request.__dict__.get("_post")
    return post if post is not None else QueryDict()


def _scrub_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return _SECRET_VALUES.sub(SUBSTITUTE, value.decode("utf-8", "replace")).encode()
    if isinstance(value, str):
        return _SECRET_VALUES.sub(SUBSTITUTE, value)
    return value


class NulInQuery(SuspiciousOperation):
    """A query string with a NUL character: never legitimate here, and a database error on
    PostgreSQL wherever a value reaches a query (social-auth's ``partial_token``, for one)."""


class RefuseNulMiddleware:
    """Refuse NUL characters in query strings (400; JSON under /api/) and ignore cookies holding one.

    A cookie such as ``sessionid="abcdefgh\\000"`` (an octal escape Django's cookie parser
    decodes) would otherwise be looked up in the session table: a 500 on PostgreSQL for every
    page. A broken cookie is treated as absent, so the browser recovers by itself. Ids in paths
    are checked by the URL converters (accounts/converters.py), which answer 404.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("QUERY_STRING") and any(
            "\x00" in name or "\x00" in value for name, values in request.GET.lists() for value in values
        ):
            raise NulInQuery("NUL character in the query string")
        broken = [name for name, value in request.COOKIES.items() if "\x00" in name or "\x00" in value]
        for name in broken:
            del request.COOKIES[name]
        return self.get_response(request)


class NoStoreForSignedInMiddleware:
    """``Cache-Control: no-store`` on every answer to a signed-in person.

    Their pages show identities, emails, agent keys' names and activity: neither the browser's
    back/forward cache on a shared computer nor any proxy may keep them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
            patch_cache_control(response, private=True)
        return response
