"""Issue 16.1: a metadata URL is fetched from the very addresses that were checked (no DNS rebinding).

A local TLS server stands in for an IdP's metadata host: its name (``idp.example.test``) resolves
nowhere, yet the fetch reaches it through the checked address while TLS still verifies that name; a
certificate for another name is refused, and so is an answer over the size limit.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from enterprise import metadata

HOST = "idp.example.test"


def _certificate(tmp_path, name: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path):
    """Serve ``body`` over TLS on 127.0.0.1 with a certificate for ``name``; yields (port, trust)."""
    servers = []

    def start(name: str, body: bytes):
        cert_path, key_path = _certificate(tmp_path, name)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        trust = ssl.create_default_context(cafile=str(cert_path))
        return server.server_address[1], trust

    yield start
    for server in servers:
        server.shutdown()


def test_the_fetch_connects_to_the_checked_address_and_verifies_the_hosts_name(tls_server):
    port, trust = tls_server(HOST, b"<EntityDescriptor/>")
    body = metadata._fetch_pinned(
        f"https://{HOST}:{port}/metadata", addresses=["127.0.0.1"], ssl_context=trust
    )
    assert body == b"<EntityDescriptor/>"


def test_a_certificate_for_another_name_is_refused(tls_server):
    port, trust = tls_server("elsewhere.example.test", b"<EntityDescriptor/>")
    with pytest.raises(metadata.MetadataError, match="could not be fetched"):
        metadata._fetch_pinned(f"https://{HOST}:{port}/metadata", addresses=["127.0.0.1"], ssl_context=trust)


def test_an_answer_over_the_size_limit_is_refused(tls_server):
    port, trust = tls_server(HOST, b"x" * (metadata.MAX_METADATA_BYTES + 1))
    with pytest.raises(metadata.MetadataError, match="larger than"):
        metadata._fetch_pinned(f"https://{HOST}:{port}/metadata", addresses=["127.0.0.1"], ssl_context=trust)


def test_the_check_returns_the_public_addresses_the_fetch_will_use():
    addresses = metadata.check_metadata_url(
        "https://idp.example.com/m", resolver=lambda host: ["93.184.215.14"]
    )
    assert addresses == ["93.184.215.14"] and ipaddress.ip_address(addresses[0]).is_global
    with pytest.raises(metadata.MetadataError, match="private or reserved"):
        metadata.check_metadata_url(
            "https://idp.example.com/m", resolver=lambda host: ["93.184.215.14", "10.0.0.5"]
        )
