"""Write a development `.env` once: DEBUG on, a random SECRET_KEY and a local vault key.

`make run` calls this with ``--port``: PORT and SITE_URL are written (and kept in step when the
port changes), so commands run in a second shell reach the same sandbox. It refuses to run with
DEBUG off, so a production host never gets a key generated silently.
"""

import base64
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
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
        if "SAML_SP_KEY" not in names:
            # Company (SAML) sign-in signs its requests and metadata with this pair (enterprise.sp).
            sp_key, sp_cert = _saml_sp_key_pair()
            lines.append(f"SAML_SP_KEY={sp_key}")
            lines.append(f"SAML_SP_CERT={sp_cert}")
            added.append("a SAML SP key pair")
        if "OIDC_RSA_PRIVATE_KEY" not in names and "OIDC_RSA_PRIVATE_KEY_FILE" not in names:
            # The authorization server's ID-token signing key, on one line (settings read \n back).
            pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            lines.append("OIDC_RSA_PRIVATE_KEY=" + pem.decode().strip().replace("\n", "\\n"))
            added.append("an ID-token signing key")
        if "MCP_CLIENT_ID" not in names:
            # The example MCP server's credentials (examples/mcp_server.py); migrate registers it.
            lines.append(f"MCP_CLIENT_ID=dev-mcp-{secrets.token_hex(8)}")
            lines.append(f"MCP_CLIENT_SECRET={secrets.token_urlsafe(32)}")
            added.append("the example MCP server's credentials")
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


def _saml_sp_key_pair() -> tuple[str, str]:
    """A development SP key and self-signed certificate, as one-line PEMs (literal ``\\n``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "linking_site development SP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return key_pem.strip().replace("\n", "\\n"), cert_pem.strip().replace("\n", "\\n")
