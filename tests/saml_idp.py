"""A third-party SAML identity provider for the interop tests: pysaml2's ``Server`` (nobody here
wrote its SAML), behind a tiny HTTP server in a thread, with a sign-in form a person fills in.

pysaml2 signs with Debian's ``xmlsec1`` binary (``make test`` installs it). The IdP can rotate its
signing key: its metadata then lists the old and the new certificate, and it signs with the new.
"""

from __future__ import annotations

import html
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from .saml_support import KeyPair, make_key_pair

XMLSEC1 = "/usr/bin/xmlsec1"


class PysamlIdp:
    """``start()`` it, give the site its ``metadata()``, ``trust(sp_metadata)``, then browse."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.httpd = ThreadingHTTPServer(("localhost", 0), _Handler)
        self.httpd.idp = self  # type: ignore[attr-defined]
        self.base = f"http://localhost:{self.httpd.server_address[1]}"
        self.entity_id = f"{self.base}/idp"
        self.keys: list[KeyPair] = [make_key_pair("pysaml2 IdP 1")]
        self.sp_metadata = ""
        self.server: Server | None = None

    def _files(self, pair: KeyPair, name: str) -> tuple[str, str]:
        key, cert = self.workdir / f"{name}.key", self.workdir / f"{name}.crt"
        key.write_text(pair.key_pem)
        cert.write_text(pair.cert_pem)
        return str(key), str(cert)

    def _config(self) -> IdPConfig:
        key_file, cert_file = self._files(self.keys[-1], f"idp{len(self.keys)}")
        config = {
            "entityid": self.entity_id,
            "xmlsec_binary": XMLSEC1,
            "key_file": key_file,
            "cert_file": cert_file,
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(f"{self.base}/sso", BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                    "want_authn_requests_signed": False,
                }
            },
            "metadata": {"inline": [self.sp_metadata]} if self.sp_metadata else {},
        }
        loaded = IdPConfig()
        loaded.load(config)
        return loaded

    def trust(self, sp_metadata: str) -> None:
        self.sp_metadata = sp_metadata
        self.server = Server(config=self._config())

    def metadata(self) -> str:
        """The IdP's metadata; after ``rotate()``, with the old and the new signing certificate."""
        text = create_metadata_string(None, config=self._config(), sign=False).decode()
        signing = re.search(r'<(\w+):KeyDescriptor use="signing".*?</\1:KeyDescriptor>', text, re.S)
        assert signing is not None, text
        block = signing.group(0)
        for old in self.keys[:-1]:
            old_block = re.sub(r"(X509Certificate>)[^<]+(</)", rf"\g<1>{old.cert_body}\g<2>", block)
            text = text.replace(block, old_block + block, 1)
        return text

    def rotate(self) -> None:
        self.keys.append(make_key_pair(f"pysaml2 IdP {len(self.keys) + 1}"))
        self.server = Server(config=self._config())

    def start(self) -> PysamlIdp:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _page(self, body: str) -> None:
        data = f"<!doctype html><html><head><title>Test IdP</title></head><body>{body}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if not self.path.startswith("/sso") or "SAMLRequest" not in query:
            self.send_error(404)
            return
        fields = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
            for name in ("SAMLRequest", "RelayState")
        )
        self._page(
            "<h1>Acme sign-in (pysaml2)</h1>"
            f'<form method="post" action="/login">{fields}'
            '<label>Username <input name="username"></label>'
            '<label>Full name <input name="cn"></label>'
            '<button type="submit">Sign in</button></form>'
        )

    def do_POST(self) -> None:
        idp: PysamlIdp = self.server.idp  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        request = idp.server.parse_authn_request(form["SAMLRequest"], BINDING_HTTP_REDIRECT).message
        username = form.get("username", "alice")
        response = idp.server.create_authn_response(
            identity={"mail": [f"{username}@acme.test"], "cn": [form.get("cn") or username.title()]},
            in_response_to=request.id,
            destination=request.assertion_consumer_service_url,
            sp_entity_id=request.issuer.text,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=f"pysaml2-{username}"),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_assertion=True,
            sign_response=False,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        binding = idp.server.apply_binding(
            BINDING_HTTP_POST,
            str(response),
            destination=request.assertion_consumer_service_url,
            relay_state=form.get("RelayState", ""),
            response=True,
        )
        self._page(binding["data"] if isinstance(binding["data"], str) else binding["data"].decode())
