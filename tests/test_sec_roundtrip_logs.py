"""Codes and states never reach a log (issue 12.11): the development server, gunicorn, Django's loggers.

The servers run as real child processes (``make run``'s runserver, gunicorn as docs/deploy.md starts
it, with its access log on) and get a callback carrying canary values.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .deploy_support import GUNICORN, PYTHON, ROOT, free_port, production_env, stop

CODE = "CANARYCODE4f2a9d"
STATE = "CANARYSTATE8b1c7e"
CALLBACK = f"/complete/github/?code={CODE}&state={STATE}"


def _dev_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **production_env(),
        "DEBUG": "on",
        "SECRET_KEY": "dev-only-key-for-the-log-test",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        "CACHE_URL": "locmemcache://log-test",
        "SANDBOX_PROVIDERS": "on",
        "LOG_LEVEL": "INFO",
    }


def _get(url: str) -> None:
    # Any answer is fine (an error page too): the request line is what gets logged.
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=10).read()


def _wait_for(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


def _serve_and_log(argv: list[str], env: dict[str, str], port: int, log: Path) -> str:
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for(port, process, log)
        _get(f"http://127.0.0.1:{port}{CALLBACK}")
        _get(f"http://127.0.0.1:{port}/healthz?probe={CODE}")
        time.sleep(0.5)
    finally:
        stop(process)
    return log.read_text()


def test_the_development_server_logs_callbacks_without_code_or_state(tmp_path):
    port = free_port()
    env = _dev_env(tmp_path, port)
    text = _serve_and_log(
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env, port, tmp_path / "run.log"
    )
    assert '"GET /complete/github/ HTTP/1.1"' in text, text[-2000:]
    assert CODE not in text and STATE not in text


def test_gunicorns_access_log_leaves_out_code_and_state(tmp_path):
    port = free_port()
    env = {
        **_dev_env(tmp_path, port),
        "DEBUG": "off",
        "SANDBOX_PROVIDERS": "off",
        "SECRET_KEY": "x" * 60,
        "SECURE_SSL_REDIRECT": "off",
        "SOCIAL_AUTH_GITHUB_KEY": "log-test-client",
        "SOCIAL_AUTH_GITHUB_SECRET": "log-test-secret",
    }
    argv = [GUNICORN, "linking_site.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    argv += ["--access-logfile", "-", "--timeout", "30"]
    text = _serve_and_log(argv, env, port, tmp_path / "gunicorn.log")
    assert '"GET /complete/github/ HTTP/1.1"' in text, text[-2000:]
    assert CODE not in text and STATE not in text


def test_django_log_lines_lose_their_query_strings():
    # Any logger's line that names a callback URL (a library's debug line, a warning) goes through
    # the filter of the handler LOGGING configures (settings), here read from its stream.
    console = next(h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler)
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        logging.getLogger("social").warning("Callback %s refused", CALLBACK)
        logging.getLogger("django.request").warning("Bad Request: %s", f"GET {CALLBACK} HTTP/1.1")
    finally:
        console.setStream(previous)
    err = stream.getvalue()
    assert "Callback /complete/github/ refused" in err
    assert "GET /complete/github/ HTTP/1.1" in err
    assert CODE not in err and STATE not in err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"GET /complete/github/?code=a&state=b HTTP/1.1" 302 0', '"GET /complete/github/ HTTP/1.1" 302 0'),
        ("http://x.example/complete/google-oauth2/?code=a#f", "http://x.example/complete/google-oauth2/"),
        ("no url here?really", "no url here?really"),
    ],
)
def test_the_filter_strips_only_query_strings(line, expected):
    from accounts.logfilters import strip_query_strings

    assert strip_query_strings(line) == expected
