"""OpenID Connect providers: configuration, the backend, and checks, one module each.

Any standards-compliant OpenID Connect provider (Okta, Keycloak, Entra ID, ...) is a social-auth
backend here. Two ways to configure them (docs/oidc.md has the details):

* one provider, with social-auth's own names: ``SOCIAL_AUTH_OIDC_OIDC_ENDPOINT`` / ``_KEY`` /
  ``_SECRET`` (backend ``oidc``, class ``accounts.oidc.backend.OpenIdConnectAuth``, callback
  ``/complete/oidc/``);
* several, each named: ``OIDC_PROVIDERS=okta,keycloak`` and per provider ``OIDC_OKTA_ENDPOINT``,
  ``OIDC_OKTA_KEY``, ``OIDC_OKTA_SECRET`` (and optional ``_TITLE``, ``_SCOPES``,
  ``_TRUST_EMAIL_VERIFIED``, ...). Each becomes its own backend (``okta``, callback
  ``/complete/okta/``, class ``accounts.oidc.named.OIDC_okta``).

The rooms:

* ``config``: the environment read into settings (``settings.py`` imports only this module, so it
  imports nothing that needs the app registry);
* ``discovery``: what a discovery document must say for this site (``discovery_problems``);
* ``id_tokens``: ID-token validation (signature, JWKS re-fetch limit, claim types, refresh);
* ``backend``: the ``OpenIdConnectAuth`` backend (authorization request and response, UserInfo,
  refresh);
* ``named``: the named providers' backend classes;
* ``checks``: ``manage.py check`` and ``validate_at_startup``.

This package's ``__init__`` imports nothing on purpose: ``settings.py`` imports ``config`` while
the app registry is not ready, and importing a submodule runs this file first.
"""
