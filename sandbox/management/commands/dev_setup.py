"""Write a development `.env` once: DEBUG on, a random SECRET_KEY and a local vault key.

`make run` calls this with ``--port``: PORT and SITE_URL are written (and kept in step when the
port changes), so commands run in a second shell reach the same sandbox. It refuses to run with
DEBUG off, so a production host never gets a key generated silently.
"""

import base64
import secrets
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    # It writes the very settings the checks would complain about (VAULT_KEYS), so it runs first.
    requires_system_checks: list = []
    help = "Create a development .env (DEBUG, SECRET_KEY, VAULT_KEYS) if it does not exist. Development only."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--path", help="where to write (default: .env in the project folder)")
        parser.add_argument("--port", type=int, help="the dev server's port: written as PORT and SITE_URL")

    def handle(self, *args, path: str | None = None, port: int | None = None, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("dev_setup is for development only: DEBUG is off, so no key was generated.")
        path = Path(path) if path else settings.BASE_DIR / ".env"
        lines = path.read_text().splitlines() if path.exists() else []
        names = {line.split("=", 1)[0].strip() for line in lines if "=" in line and not line.startswith("#")}
        added = []
        if not lines:
            lines.append(
                "# Development settings written by `make run`. Never use these values in production."
            )
        if "DEBUG" not in names:
            lines.append("DEBUG=on")
        if "SECRET_KEY" not in names:
            lines.append(f"SECRET_KEY={secrets.token_urlsafe(50)}")
            added.append("a SECRET_KEY")
        if "VAULT_KEYS" not in names:
            key_name = f"dev-{date.today():%Y%m%d}"
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
            lines.append(f"VAULT_KEYS={key_name}:{key}")
            added.append(f"a vault key named {key_name}")
        if port is not None:
            lines, changed = _with_port(lines, port)
            added.extend(changed)
        if not added and path.exists():
            self.stdout.write(f"Using the existing {path.name} (development keys already there).")
            return
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        self.stdout.write(f"Created {' and '.join(added)} in {path} (git ignores it; keep it private).")


def _with_port(lines: list[str], port: int) -> tuple[list[str], list[str]]:
    """Set PORT and SITE_URL for ``port``; a SITE_URL someone set to another host is left alone."""
    wanted = {"PORT": str(port), "SITE_URL": f"http://127.0.0.1:{port}"}
    current = {
        line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip()
        for line in lines
        if "=" in line and not line.startswith("#")
    }
    site = current.get("SITE_URL", "")
    # Only a SITE_URL this command wrote (a local address) follows the port; a real host stays.
    if site and not site.startswith(("http://127.0.0.1:", "http://localhost:")):
        wanted.pop("SITE_URL")
    changed = [f"{name}={value}" for name, value in wanted.items() if current.get(name) != value]
    if not changed:
        return lines, []
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in wanted or line.startswith("#")]
    return kept + [f"{name}={value}" for name, value in wanted.items()], changed
