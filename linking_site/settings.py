"""Settings for linking_site, read from the environment and `.env` (django-environ).

Every name a deployer sets is listed in README.md. Anything else here is derived.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from .settings_authserver import authserver_settings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_dotenv = BASE_DIR / ".env"
if _dotenv.is_file() and os.environ.get("LINKING_SITE_IGNORE_DOTENV") != "1":
    # Values already in the process environment win over the file.
    env.read_env(str(_dotenv))

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set: set it in the environment or in .env.")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "social_django",
    "activity",
    "accounts",
    "vault",
    "enterprise",
    "sandbox",
    "oauth2_provider",
    "authserver",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "accounts.security.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Browsers on another allowed host go to SITE_URL's first: every OAuth flow returns there.
    "accounts.middleware.CanonicalHostMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # "Last seen" on the sessions page: at most one UPDATE per session every few minutes.
    "accounts.session_middleware.SessionLastSeenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.security.NoStoreForSignedInMiddleware",
    "accounts.middleware.AuthFlowErrorMiddleware",
]

ROOT_URLCONF = "linking_site.urls"
WSGI_APPLICATION = "linking_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers serialise instead of one failing
    # with "database is locked" half-way through (this is what keeps refresh single-flight here).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Lets vault.prepared keep the agent API's few hot statements (vault.hotpath) prepared per
        # connection (Django's own queries use client-side binding and are never prepared).
        # Off behind a pooler in transaction mode that cannot hold prepared statements.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "prepare_threshold", 5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache, sessions, email ---------------------------------------------------------------------

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://linking-site")}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)

globals().update(env.email("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="linking_site <noreply@localhost>")

# --- Auth -----------------------------------------------------------------------------------------

LOGIN_URL = "/"
LOGIN_REDIRECT_URL = "/settings/connections/"
LOGOUT_REDIRECT_URL = "/"
# Staff password sign-in (/staff/login/, /admin/login/): failures allowed per address, and the window
# in seconds after the first failure during which further attempts are refused (accounts.staff_sign_in).
STAFF_SIGN_IN_LIMIT = (
    env.int("STAFF_SIGN_IN_FAILURES", default=5),
    env.int("STAFF_SIGN_IN_WINDOW_SECONDS", default=15 * 60),
)

SUDO_MODE_SECONDS = env.int("SUDO_MODE_SECONDS", default=900)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Providers ------------------------------------------------------------------------------------

SANDBOX_PROVIDERS = env.bool("SANDBOX_PROVIDERS", default=DEBUG)
SANDBOX_TOKEN_TTL = env.int("SANDBOX_TOKEN_TTL", default=3600)
# Where server-side code (token exchange, refresh, revocation) reaches the sandbox when there is no
# browser request to take the host from.
SANDBOX_BASE_URL = env.str("SANDBOX_BASE_URL", default=f"http://127.0.0.1:{PORT}")
if SANDBOX_PROVIDERS and not DEBUG and os.environ.get("LINKING_SITE_FORCE_SANDBOX") != "1":
    raise ImproperlyConfigured(
        "SANDBOX_PROVIDERS is on while DEBUG is off: the sandbox stands in for Google and GitHub "
        "and must never run in production. Turn SANDBOX_PROVIDERS off or set DEBUG=on."
    )

SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = env.str("SOCIAL_AUTH_GOOGLE_OAUTH2_KEY", default="")
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = env.str("SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET", default="")
SOCIAL_AUTH_GITHUB_KEY = env.str("SOCIAL_AUTH_GITHUB_KEY", default="")
SOCIAL_AUTH_GITHUB_SECRET = env.str("SOCIAL_AUTH_GITHUB_SECRET", default="")
# OpenID Connect (docs/oidc.md): one provider with social-auth's own names (backend "oidc") ...
SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = env.str("SOCIAL_AUTH_OIDC_OIDC_ENDPOINT", default="")
SOCIAL_AUTH_OIDC_KEY = env.str("SOCIAL_AUTH_OIDC_KEY", default="")
SOCIAL_AUTH_OIDC_SECRET = env.str("SOCIAL_AUTH_OIDC_SECRET", default="")
SOCIAL_AUTH_OIDC_TITLE = env.str("SOCIAL_AUTH_OIDC_TITLE", default="")
# ... and any number of named ones: OIDC_PROVIDERS=okta,keycloak with OIDC_OKTA_ENDPOINT, _KEY, _SECRET, ...
# (each its own backend "okta", "keycloak"; accounts.oidc.config makes their SOCIAL_AUTH_<NAME>_* settings).
from accounts.oidc.config import endpoint_hosts_from as _oidc_endpoint_hosts  # noqa: E402
from accounts.oidc.config import named_provider_settings as _named_oidc_providers  # noqa: E402

_OIDC_NAMED = _named_oidc_providers(env)
OIDC_PROVIDERS = _OIDC_NAMED.names
globals().update(_OIDC_NAMED.settings)
# http:// issuers: only with DEBUG on, or with this flag (the interop tests' local provider).
OIDC_ALLOW_INSECURE_ISSUER = env.bool("OIDC_ALLOW_INSECURE_ISSUER", default=False)
# manage.py check and start-up fetch each provider's discovery document; off: settings only.
OIDC_CHECK_DISCOVERY = env.bool("OIDC_CHECK_DISCOVERY", default=True)

if SANDBOX_PROVIDERS:
    # The sandbox accepts these fixed client credentials; real ones are never needed for it.
    SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = SOCIAL_AUTH_GOOGLE_OAUTH2_KEY or "sandbox-google-client"
    SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET or "sandbox-google-secret"
    SOCIAL_AUTH_GITHUB_KEY = SOCIAL_AUTH_GITHUB_KEY or "sandbox-github-client"
    SOCIAL_AUTH_GITHUB_SECRET = SOCIAL_AUTH_GITHUB_SECRET or "sandbox-github-secret"
    _GOOGLE_BACKEND = "sandbox.backends.SandboxGoogleOAuth2"
    _GITHUB_BACKEND = "sandbox.backends.SandboxGithubOAuth2"
else:
    _GOOGLE_BACKEND = "accounts.backends.GoogleOAuth2"
    _GITHUB_BACKEND = "accounts.backends.GithubOAuth2"

AUTHENTICATION_BACKENDS = []
if SOCIAL_AUTH_GOOGLE_OAUTH2_KEY:
    AUTHENTICATION_BACKENDS.append(_GOOGLE_BACKEND)
if SOCIAL_AUTH_GITHUB_KEY:
    AUTHENTICATION_BACKENDS.append(_GITHUB_BACKEND)
# Enterprise (SAML) connections: configured by staff in the admin, offered as "Company".
AUTHENTICATION_BACKENDS.append("enterprise.backend.EnterpriseSAMLAuth")
if SOCIAL_AUTH_OIDC_OIDC_ENDPOINT:
    AUTHENTICATION_BACKENDS.append("accounts.oidc.backend.OpenIdConnectAuth")
AUTHENTICATION_BACKENDS.extend(_OIDC_NAMED.backends)
AUTHENTICATION_BACKENDS.append("django.contrib.auth.backends.ModelBackend")

SOCIAL_AUTH_USER_MODEL = AUTH_USER_MODEL
# redirect_uri and every other absolute URL social-auth builds come from SITE_URL, not the Host header.
SOCIAL_AUTH_STRATEGY = "accounts.strategy.SiteUrlStrategy"
SOCIAL_AUTH_URL_NAMESPACE = "social"
SOCIAL_AUTH_LOGIN_REDIRECT_URL = LOGIN_REDIRECT_URL
SOCIAL_AUTH_NEW_ASSOCIATION_REDIRECT_URL = LOGIN_REDIRECT_URL
SOCIAL_AUTH_LOGIN_ERROR_URL = "/"
SOCIAL_AUTH_RAISE_EXCEPTIONS = False
SOCIAL_AUTH_REDIRECT_IS_HTTPS = env.bool("SOCIAL_AUTH_REDIRECT_IS_HTTPS", default=not DEBUG)
SOCIAL_AUTH_REQUESTS_TIMEOUT = env.float("SOCIAL_AUTH_REQUESTS_TIMEOUT", default=5.0)
SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS = {
    # Without offline access Google issues no refresh token; consent makes it issue one again
    # when an account is re-linked.
    "access_type": "offline",
    "prompt": "consent",
    "include_granted_scopes": "true",
}
SOCIAL_AUTH_GITHUB_SCOPE = ["read:user", "user:email"]
SOCIAL_AUTH_OIDC_USE_PKCE = True
# Scopes on top of openid, profile, email and offline_access (which accounts.oidc.backend always asks for).
SOCIAL_AUTH_OIDC_SCOPE = env.str("SOCIAL_AUTH_OIDC_SCOPE", default="").replace(",", " ").split()
# Trust an OIDC provider's email_verified claim only when the deployer says so.
SOCIAL_AUTH_OIDC_TRUST_EMAIL_VERIFIED = env.bool("SOCIAL_AUTH_OIDC_TRUST_EMAIL_VERIFIED", default=False)
# Hosts other than the issuer's that its discovery may put endpoints on (docs/oidc.md, issue 20.5).
SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS = _oidc_endpoint_hosts(
    env.str("SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS", default=""), variable="SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS"
)

# The pipeline keeps social-auth's lookup steps but replaces the ones that would overwrite the
# primary profile (user_details) or leave tokens in plaintext (load_extra_data).
SOCIAL_AUTH_PIPELINE = [
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_names",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "accounts.pipeline.check_flow_owner",
    "accounts.pipeline.capture_merge_proof",
    "social_core.pipeline.social_auth.social_user",
    "accounts.pipeline.check_flow_purpose",
    "accounts.pipeline.suggest_existing_profile",
    "social_core.pipeline.user.get_username",
    "accounts.pipeline.create_user",
    "accounts.pipeline.lock_profile",
    "social_core.pipeline.social_auth.associate_user",
    "accounts.pipeline.save_identity_details",
    "vault.pipeline.store_tokens",
    "accounts.pipeline.finish_flow",
]
SOCIAL_AUTH_DISCONNECT_PIPELINE = [
    "accounts.disconnect_pipeline.allowed_to_disconnect",
    "social_core.pipeline.disconnect.get_entries",
    "vault.pipeline.schedule_revocation",
    "accounts.disconnect_pipeline.disconnect",
]

# The SP's SAML key pair (PEM; "\n" may be written literally): signs AuthnRequests and the metadata.
# SAML_SP_CERT_NEXT is published next to the current one ahead of a rotation (enterprise.sp).
SAML_SP_KEY = env.str("SAML_SP_KEY", default="")
SAML_SP_CERT = env.str("SAML_SP_CERT", default="")
SAML_SP_CERT_NEXT = env.str("SAML_SP_CERT_NEXT", default="")

# --- Vault ----------------------------------------------------------------------------------------

# "name:base64-32-bytes" entries, comma-separated; the first encrypts, all decrypt.
VAULT_KEYS = env.str("VAULT_KEYS", default="")
# Lifetime assumed for an access token whose provider stated no expires_in (seconds): it is then
# renewed that early when a refresh token is held, and shown as "expiry assumed".
VAULT_ASSUMED_TOKEN_LIFETIME = env.int("VAULT_ASSUMED_TOKEN_LIFETIME", default=3600)
# The longest a token request waits on a provider refresh, all retries included (seconds); shorter
# than common client timeouts (30 s), so an agent gets a 503 with Retry-After instead of a timeout.
VAULT_REFRESH_DEADLINE = env.float("VAULT_REFRESH_DEADLINE", default=10.0)
# Days before an agent key expires that its owner is mailed about it (once a day, by vault_refresh);
# 0 sends no such mail.
VAULT_KEY_EXPIRY_WARNING_DAYS = env.int("VAULT_KEY_EXPIRY_WARNING_DAYS", default=7)
# Absolute base URL of this site, for links handed to agents and sent by email.
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")

# accounts' one extension point (accounts.adapter): how the vault takes part in accounts' work
# (token status on the connections page, merges, a refused flow's tokens, /readyz) without
# accounts importing it (docs/architecture.md "The extension point").
ACCOUNTS_ADAPTER = "vault.adapter.VaultAccountsAdapter"

# Days of activity kept: `manage.py activity_retention` (daily cron) drops older months (whole
# partitions on PostgreSQL, batched deletes on SQLite) and creates the coming months' partitions.
ACTIVITY_RETENTION_DAYS = env.int("ACTIVITY_RETENTION_DAYS", default=400)
# The providers (name and title) the activity admin filters by: activity imports nothing of ours.
ACTIVITY_PROVIDERS = "accounts.providers.configured_providers"

# The authorization server (authserver/, on django-oauth-toolkit): its own module, read from the same
# environment; the issuer is SITE_URL.
globals().update(authserver_settings(env, site_url=SITE_URL))

# --- Security -------------------------------------------------------------------------------------

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# Error reports (debug pages, mails to ADMINS, logs) never show secrets, with DEBUG on too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "accounts.security.SecretsFilter"
DEFAULT_EXCEPTION_REPORTER = "accounts.security.SecretsReporter"

# A strict Content-Security-Policy on every answer (django-csp): no inline script or style
# anywhere (templates use static/ files only), no framing, no plugins.
from csp.constants import NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Avatars come from the providers' image hosts.
        "img-src": [SELF, "data:", "https:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        # Chromium applies form-action to the redirect that answers a POST, and "Continue with
        # GitHub" is a POST answered by a redirect to the provider: any https origin (OpenID
        # Connect providers are configured at run time), http ones where insecure issuers may be.
        "form-action": [SELF, "https:", *(["http:"] if DEBUG or OIDC_ALLOW_INSECURE_ISSUER else [])],
    }
}

# --- Static files, i18n ------------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# In development static files come straight from the app folders (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ------------------------------------------------------------------------------------------

# No query string in any log line: a callback's ?code=…&state=… is a live credential (issue 12.11).
# django.server is the development server's request log (`make run`); gunicorn: gunicorn.conf.py.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"strip_query": {"()": "accounts.logfilters.StripQueryStrings"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["strip_query"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["strip_query"],
        },
    },
    "loggers": {
        # oauthlib's DEBUG lines print authorization codes (a dict's repr: no URL query to strip).
        "oauthlib": {"level": "INFO"},
        "django.server": {
            "handlers": ["django.server"],
            "level": "INFO",
            "propagate": False,
            "filters": ["strip_query"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
