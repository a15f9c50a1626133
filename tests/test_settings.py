"""Configuration: the sandbox refuses production, deploy checks pass, security headers are set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _run(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # A clean environment: nothing from the test settings may leak into the child process.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update({"LINKING_SITE_IGNORE_DOTENV": "1", "DJANGO_SETTINGS_MODULE": "linking_site.settings"})
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "DEBUG": "off",
    "SECRET_KEY": "x" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789",
    "ALLOWED_HOSTS": "links.example.com",
    "SANDBOX_PROVIDERS": "off",
    "DATABASE_URL": "sqlite:////tmp/linking_site_deploy_check.sqlite3",
    "SOCIAL_AUTH_GITHUB_KEY": "Iv1.0123456789abcdef",
    "SOCIAL_AUTH_GITHUB_SECRET": "not-a-real-secret",
    "VAULT_KEYS": "prod-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "OIDC_RSA_PRIVATE_KEY": rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode(),
}


def test_sandbox_with_debug_off_refuses_to_start():
    result = _run({**PRODUCTION, "SANDBOX_PROVIDERS": "on"}, "check")
    assert result.returncode != 0
    assert "SANDBOX_PROVIDERS is on while DEBUG is off" in result.stderr


def test_missing_secret_key_in_production_is_one_clear_line():
    env = dict(PRODUCTION)
    env.pop("SECRET_KEY")
    result = _run(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_the_authorization_server_needs_its_id_token_key_in_production():
    missing = _run({**PRODUCTION, "OIDC_RSA_PRIVATE_KEY": ""}, "check")
    assert missing.returncode != 0
    assert "OIDC_RSA_PRIVATE_KEY is not set" in missing.stderr
    garbled = _run({**PRODUCTION, "OIDC_RSA_PRIVATE_KEY": "not a key"}, "check")
    assert garbled.returncode != 0 and "not an unencrypted RSA private key" in garbled.stderr


def test_check_deploy_is_clean_in_a_production_like_environment():
    result = _run(PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_use_secure_cookies_and_hsts():
    result = _run(
        PRODUCTION,
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SECURE_REFERRER_POLICY)",
    )
    assert result.stdout.split() == ["True", "True", "31536000", "True", "same-origin"]


@pytest.mark.django_db
def test_sqlite_uses_immediate_transactions():
    if connection.vendor != "sqlite":
        assert connection.vendor == "postgresql"
        return
    assert settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.django_db
def test_pages_send_security_headers(client):
    response = client.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content


def test_dev_setup_writes_keys_once_and_refuses_production(tmp_path):
    target = tmp_path / ".env"
    first = _run({"DEBUG": "on"}, "dev_setup", "--path", str(target))
    assert first.returncode == 0, first.stderr
    assert "Created a SECRET_KEY and a vault key named dev-" in first.stdout
    written = target.read_text()
    assert "VAULT_KEYS=dev-" in written and "SECRET_KEY=" in written
    key_line = next(line for line in written.splitlines() if line.startswith("VAULT_KEYS="))
    assert key_line.split(":", 1)[1] not in first.stdout  # never printed
    again = _run({"DEBUG": "on"}, "dev_setup", "--path", str(target))
    assert "Using the existing" in again.stdout and target.read_text() == written
    refused = _run({**PRODUCTION, "DEBUG": "off"}, "dev_setup", "--path", str(tmp_path / "prod.env"))
    assert refused.returncode != 0
    assert "development only" in refused.stderr
    assert not (tmp_path / "prod.env").exists()
