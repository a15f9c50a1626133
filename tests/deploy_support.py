"""Helpers for the deployment tests: a production-like environment, child processes, free ports.

Every child gets an environment built from scratch (not the test run's), so what it shows is what a
deployment with those variables gets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_SERVER = "redis://127.0.0.1:6379"


def id_token_key() -> str:
    """A fresh RSA key for the authorization server's ID tokens (PEM), as production sets one."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def vault_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def production_env(**overrides: str) -> dict[str, str]:
    """What a deployment sets (README "Deploying"): DEBUG off, HTTPS on, real keys, no sandbox."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "LINKING_SITE_IGNORE_DOTENV": "1",
        "DEBUG": "off",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "links.example.com",
        "SITE_URL": "https://links.example.com",
        "DATABASE_URL": f"{PG_SERVER}/postgres",
        "CACHE_URL": f"{REDIS_SERVER}/0",
        "VAULT_KEYS": f"prod-1:{vault_key()}",
        "OIDC_RSA_PRIVATE_KEY": id_token_key(),
        "EMAIL_URL": "dummymail://",
        "SANDBOX_PROVIDERS": "off",
        "LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


def run(argv: list[str], env: dict[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return run([PYTHON, "manage.py", *args], env, timeout=timeout)


def collected_static(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Production settings (``tests.deploy_settings``) with the static files collected under
    ``tmp_path``: the environment, and the manifest's versioned name of every file."""
    static_root = tmp_path / "static"
    env = production_env(
        DJANGO_SETTINGS_MODULE="tests.deploy_settings",
        DEPLOY_TEST_STATIC_ROOT=str(static_root),
        ALLOWED_HOSTS="testserver",
        DATABASE_URL=f"sqlite:///{tmp_path / 'no-such-dir' / 'none.sqlite3'}",
    )
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    return env, json.loads((static_root / "staticfiles.json").read_text())["paths"]


# Run in a child with the deployment's environment: Django's test client, over HTTPS, on each path.
_GET_PATHS = """
import json, sys, django
django.setup()
from django.test import Client
encoding, answers = sys.argv[1], {}
for path in sys.argv[2:]:
    response = Client().get(path, secure=True, headers={"Accept-Encoding": encoding} if encoding else {})
    body = b"".join(response.streaming_content) if response.streaming else response.content
    answers[path] = {"status": response.status_code, "type": response.get("Content-Type", ""),
                     "cache_control": response.get("Cache-Control", ""),
                     "encoding": response.get("Content-Encoding", ""), "bytes": len(body),
                     "body": body.decode("utf-8", "replace")}
print(json.dumps(answers))
"""


def get_with(env: dict[str, str], *paths: str, accept_encoding: str = "") -> dict[str, dict]:
    """Each path as a deployment with ``env`` answers it (in a child process): status, content
    type, cache control, content encoding, size and body."""
    served = run([PYTHON, "-c", _GET_PATHS, accept_encoding, *paths], env)
    assert served.returncode == 0, served.stderr
    return json.loads(served.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    *, port: int, env: dict[str, str], workers: int, threads: int = 1, log: Path
) -> subprocess.Popen:
    argv = [
        GUNICORN,
        "linking_site.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    argv += ["--log-level", "warning", "--timeout", "30"]
    if threads > 1:
        argv += ["--worker-class", "gthread", "--threads", str(threads)]
    with log.open("w") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn on port {port} did not answer /healthz:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Stop a gunicorn master and its workers (its own process group), waiting for them."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    # Workers that outlived their master (they should not) go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def admin_sql(*statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
