"""Issue 14.6, operators: `make run` writes the dev port, commands say what failed, and nothing waits
for input without a terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import User
from vault import provider_calls
from vault.command_output import Progress
from vault.models import TokenSet

from .flows import sign_in
from .vault_support import expire, http_status, patch_transport, stored_tokens

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(
        {"LINKING_SITE_IGNORE_DOTENV": "1", "DJANGO_SETTINGS_MODULE": "linking_site.settings", "DEBUG": "on"}
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values.setdefault(name, []).append(value)
    return values


def test_make_run_writes_port_and_site_url_and_follows_a_new_port(tmp_path):
    target = tmp_path / ".env"
    first = _manage("dev_setup", "--path", str(target), "--port", "8001")
    assert first.returncode == 0, first.stderr
    written = _env(target)
    assert written["PORT"] == ["8001"] and written["SITE_URL"] == ["http://127.0.0.1:8001"]
    keys = written["VAULT_KEYS"]
    again = _manage("dev_setup", "--path", str(target), "--port", "8002")
    assert again.returncode == 0, again.stderr
    written = _env(target)
    # One line each, in step with the new port; the keys are untouched.
    assert written["PORT"] == ["8002"] and written["SITE_URL"] == ["http://127.0.0.1:8002"]
    assert written["VAULT_KEYS"] == keys
    unchanged = target.read_text()
    assert "Using the existing" in _manage("dev_setup", "--path", str(target), "--port", "8002").stdout
    assert target.read_text() == unchanged
    # A SITE_URL someone pointed at a real host is theirs: only PORT follows.
    target.write_text(unchanged.replace("http://127.0.0.1:8002", "https://dev.example.org"))
    _manage("dev_setup", "--path", str(target), "--port", "8003")
    assert _env(target)["SITE_URL"] == ["https://dev.example.org"] and _env(target)["PORT"] == ["8003"]


def test_make_run_passes_the_port_to_dev_setup():
    plan = subprocess.run(
        ["make", "-n", "run", "PORT=8004"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "manage.py dev_setup --port 8004" in plan.stdout, plan.stdout + plan.stderr
    assert "runserver 127.0.0.1:8004" in plan.stdout


@pytest.mark.django_db
def test_vault_refresh_fails_says_back_off_and_prints_json_counts(staff, monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))
    github = TokenSet.objects.get(provider="github")
    expire(github)
    tokens = stored_tokens(github)
    patch_transport(
        monkeypatch,
        when=lambda method, url: method == "POST" and "access_token" in url,
        answer=http_status(503),
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="failed"):
        call_command("vault_refresh", stdout=out, stderr=io.StringIO())
    summary = out.getvalue()
    assert summary.count("\n") == 1, summary  # one line without a terminal
    assert "Refresh: 1 due, 0 refreshed" in summary and "failed: 1 provider unavailable" in summary

    # Next run: the pause is on; that is said, by reason, not silently passed over.
    out = io.StringIO()
    call_command("vault_refresh", stdout=out, stderr=io.StringIO())
    assert "failed: none; Not tried, provider failed recently (back-off" in out.getvalue()
    assert "1 server error" in out.getvalue()  # the provider's last answer, as the reason

    out = io.StringIO()
    call_command("vault_refresh", "--json", stdout=out, stderr=io.StringIO())
    counts = json.loads(out.getvalue())
    assert counts["refresh"]["backed_off"] == {"server_error": 1}
    assert counts["refresh"]["failed"] == {} and counts["revocations"]["due"] == 0
    assert not any(token in out.getvalue() for token in tokens if token)


@pytest.mark.django_db
def test_vault_rotate_keys_prints_json_and_no_line_per_batch(staff):
    out = io.StringIO()
    call_command("vault_rotate_keys", "--json", "--dry-run", stdout=out, stderr=io.StringIO())
    counts = json.loads(out.getvalue())
    assert counts["dry_run"] is True and counts["pending"] == 0 and counts["failed"] == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_rate_and_eta_on_a_terminal_only():
    terminal = _Terminal()
    progress = Progress(terminal, label="Refresh", min_interval=0)
    progress.started -= 2.0  # as if two seconds had passed
    progress(10, 40)
    progress.close()
    assert "Refresh 10/40, 5.0/s, ETA 6 s" in terminal.getvalue()
    piped = io.StringIO()
    quiet = Progress(piped, label="Refresh", min_interval=0)
    quiet(10, 40)
    quiet.close()
    assert piped.getvalue() == ""


@pytest.mark.django_db
def test_accounts_merge_without_terminal_or_yes_fails_with_one_line(staff, monkeypatch):
    sign_in(Client(), "github", email="bea@example.com")
    source = User.objects.exclude(pk=staff.pk).get()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # cron or a pipe: nobody to answer
    with pytest.raises(CommandError, match="no terminal to ask for confirmation; run again with --yes"):
        call_command(
            "accounts_merge", str(staff.pk), str(source.pk), "--actor", staff.username, stdout=io.StringIO()
        )
    assert User.objects.get(pk=source.pk).is_active  # nothing merged


def _agent(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return subprocess.run(
        [sys.executable, "examples/agent.py"],
        cwd=ROOT,
        env={**base, "LINKING_SITE_AGENT_KEY": "lsa_example", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("variable", ["LINKING_SITE_URL", "SITE_URL"])
def test_agent_example_reads_the_site_url_and_fails_with_one_line_when_down(variable):
    # Port 9 (discard) has nothing listening here: the site is "down".
    answer = _agent({variable: "http://127.0.0.1:9"})
    assert answer.returncode == 2
    assert answer.stderr.strip() == (
        "Cannot reach linking_site at http://127.0.0.1:9: is it running? Set LINKING_SITE_URL."
    )


@pytest.mark.django_db(transaction=True)
def test_vault_refresh_works_through_token_sets_concurrently(staff, monkeypatch):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))
    for token_set in TokenSet.objects.all():
        expire(token_set)
    before = {token_set.pk: stored_tokens(token_set) for token_set in TokenSet.objects.all()}
    threads: set[str] = set()

    def seen(method: str, url: str) -> bool:
        threads.add(threading.current_thread().name)
        return False  # only watch: the sandbox answers

    patch_transport(monkeypatch, when=seen, answer=http_status(500))
    out = io.StringIO()
    call_command("vault_refresh", "--workers", "2", stdout=out, stderr=io.StringIO())
    assert "Refresh: 2 due, 2 refreshed" in out.getvalue()
    assert {name for name in threads if name.startswith("vault-worker-")}, threads
    for token_set in TokenSet.objects.all():
        assert stored_tokens(token_set)[0] != before[token_set.pk][0]
    with pytest.raises(CommandError, match="--workers must be between 1 and 32"):
        call_command("vault_refresh", "--workers", "0", stdout=io.StringIO())
