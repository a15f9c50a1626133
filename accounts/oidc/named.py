"""The named OpenID Connect providers' backend classes (``OIDC_PROVIDERS=okta,keycloak``).

Why the classes are made here, at run time, and not written out: social-auth tells backends apart
by the class attribute ``name`` (also the settings prefix ``SOCIAL_AUTH_<NAME>_*`` and the callback
path ``/complete/<name>/``) and loads each by its dotted path in ``AUTHENTICATION_BACKENDS``, as
Django's auth does with the path it keeps in each session. So every named provider needs a class of
its own, and the names come from the environment. They are made in one place, :func:`backend_class`,
for exactly the names in ``settings.OIDC_PROVIDERS`` (when this module is first imported, and again
when that setting changes, as in tests), and bound as attributes of this module, so
``accounts.oidc.named.OIDC_okta`` (``entra-id`` -> ``OIDC_entra_id``) imports like any class. A name
that is not configured has no class and its path does not import. Each class only carries its
``name`` and title: its settings are read from ``SOCIAL_AUTH_<NAME>_*`` at each use.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .backend import OpenIdConnectAuth
from .config import check_name, class_name, setting_prefix


def backend_class(name: str) -> type[OpenIdConnectAuth]:
    """The backend class of the named provider ``name``: made the first time, then reused.

    It becomes this module's attribute ``OIDC_<name>`` (the path the settings list).
    """
    check_name(name)
    attr = class_name(name)
    existing = globals().get(attr)
    if isinstance(existing, type) and issubclass(existing, OpenIdConnectAuth):
        return existing
    cls = type(
        attr,
        (OpenIdConnectAuth,),
        {
            "name": name,
            "title": name.replace("-", " ").title(),
            "__module__": __name__,
            "__qualname__": attr,
            "__doc__": f"The OpenID Connect provider {name!r} (OIDC_{setting_prefix(name)}_*).",
        },
    )
    globals()[attr] = cls
    return cls


def define_configured() -> list[type[OpenIdConnectAuth]]:
    """Make the class of every provider in ``settings.OIDC_PROVIDERS`` (the settings' backends)."""
    return [backend_class(name) for name in getattr(settings, "OIDC_PROVIDERS", [])]


define_configured()


@receiver(setting_changed)
def _define_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "OIDC_PROVIDERS":
        define_configured()
