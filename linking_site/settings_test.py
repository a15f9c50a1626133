"""Settings for the test suite: production-like (DEBUG off) with the sandbox forced on.

Import order matters: the environment is prepared before the main settings read it.
"""

import os

os.environ["LINKING_SITE_IGNORE_DOTENV"] = "1"
os.environ["LINKING_SITE_FORCE_SANDBOX"] = "1"
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("DEBUG", "off")
os.environ.setdefault("SANDBOX_PROVIDERS", "on")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "off")
os.environ.setdefault("SOCIAL_AUTH_REDIRECT_IS_HTTPS", "off")
# The Django test client's host: redirect_uri and every absolute URL come from SITE_URL (browser tests
# set it to the live server's URL, see tests/conftest.py).
os.environ.setdefault("SITE_URL", "http://testserver")
# Two fixed test keys (32 zero-ish bytes are fine here: tests never protect real secrets).
os.environ.setdefault(
    "VAULT_KEYS",
    "test-2:dGVzdC1rZXktdHdvLXRoaXJ0eS10d28tYnl0ZXMhISE=,test-1:dGVzdC1rZXktb25lLXRoaXJ0eS10d28tYnl0ZXMhISE=",
)

if "OIDC_RSA_PRIVATE_KEY" not in os.environ:
    # A fresh signing key per test run for the authorization server's ID tokens.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    os.environ["OIDC_RSA_PRIVATE_KEY"] = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )

from .settings import *  # noqa: F403

SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SANDBOX_BASE_URL = "http://testserver"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
LOGGING["root"]["level"] = "DEBUG"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: threads (live server, concurrency tests) then get their own connections
    # exactly as separate processes would.
    import tempfile

    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"linking_site_test_{os.getpid()}.sqlite3")
    }
