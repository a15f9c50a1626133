"""System checks: the authorization server needs its ID-token signing key outside development.

Without ``OIDC_RSA_PRIVATE_KEY`` every token request that asks for ``openid`` would fail with a
server error; ``manage.py check`` says so in one line before the site starts instead.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings
from django.core.checks import Error, register


@register()
def id_token_key_is_set(app_configs, **kwargs) -> list[Error]:
    pem = getattr(settings, "OIDC_RSA_PRIVATE_KEY", "")
    if not pem:
        if settings.DEBUG:
            return []  # development: `make run` writes one into .env
        return [
            Error(
                "OIDC_RSA_PRIVATE_KEY is not set: the authorization server cannot sign ID tokens.",
                hint="Set OIDC_RSA_PRIVATE_KEY (PEM) or OIDC_RSA_PRIVATE_KEY_FILE; see docs/deploy.md.",
                id="authserver.E001",
            )
        ]
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        return [
            Error(
                "OIDC_RSA_PRIVATE_KEY is not an unencrypted RSA private key in PEM form.",
                id="authserver.E002",
            )
        ]
    return []
