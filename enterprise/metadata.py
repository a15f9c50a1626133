"""An IdP's SAML metadata: read it (pasted, from a file, or fetched over https) and derive what we use.

Fetching is SSRF-guarded: https only, no redirects, every address the host resolves to must be
public, and the answer is limited in size and time. The network call itself is a parameter
(``fetcher``) so tests replace only that edge.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from lxml.etree import XMLSyntaxError
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.utils import OneLogin_Saml2_Utils

#: The largest metadata document accepted (a federation aggregate is not an IdP's metadata).
MAX_METADATA_BYTES = 1024 * 1024
FETCH_TIMEOUT_SECONDS = 5.0

#: ``fetcher(url) -> bytes``: the one network call of a metadata fetch.
Fetcher = Callable[[str], bytes]
#: ``resolver(host) -> addresses``: DNS, replaceable in tests.
Resolver = Callable[[str], list[str]]


class MetadataError(ValueError):
    """Metadata that cannot be used; ``str()`` is one line for staff."""


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_url: str
    signing_certificates: list[str]


def parse_idp_metadata(xml: str | bytes) -> IdpMetadata:
    """The entity id, the HTTP-Redirect SSO URL and every signing certificate of ``xml``."""
    if not xml or not str(xml).strip():
        raise MetadataError("The IdP metadata is empty.")
    if len(xml) > MAX_METADATA_BYTES:
        raise MetadataError(f"The IdP metadata is larger than {MAX_METADATA_BYTES // 1024} KB.")
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(
            xml, required_sso_binding=OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT
        )
    except XMLSyntaxError as error:
        raise MetadataError(f"The IdP metadata is not well-formed XML ({error.msg}).") from None
    except Exception as error:  # the parser refuses DTDs and entities with its own exceptions
        raise MetadataError(f"The IdP metadata could not be read ({type(error).__name__}).") from None
    idp = parsed.get("idp") or {}
    entity_id = idp.get("entityId") or ""
    sso_url = (idp.get("singleSignOnService") or {}).get("url") or ""
    if not entity_id:
        raise MetadataError("The IdP metadata has no IDPSSODescriptor with an entityID.")
    if not sso_url or urlsplit(sso_url).scheme not in ("https", "http"):
        raise MetadataError("The IdP metadata names no HTTP-Redirect SingleSignOnService URL.")
    certificates = list((idp.get("x509certMulti") or {}).get("signing") or [])
    if not certificates and idp.get("x509cert"):
        certificates = [idp["x509cert"]]
    if not certificates:
        raise MetadataError("The IdP metadata has no signing certificate.")
    for certificate in certificates:
        try:
            OneLogin_Saml2_Utils.calculate_x509_fingerprint(OneLogin_Saml2_Utils.format_cert(certificate))
        except Exception:
            raise MetadataError("A signing certificate in the IdP metadata is not a certificate.") from None
    return IdpMetadata(entity_id=entity_id, sso_url=sso_url, signing_certificates=certificates)


def read_metadata_file(path: str) -> str:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_METADATA_BYTES:
            raise MetadataError(f"{path} is larger than {MAX_METADATA_BYTES // 1024} KB.")
        return file.read_text(encoding="utf-8")
    except OSError as error:
        raise MetadataError(f"Cannot read {path}: {error.strerror or error}.") from None
    except UnicodeDecodeError:
        raise MetadataError(f"{path} is not UTF-8 text.") from None


def _resolve(host: str) -> list[str]:
    try:
        return [info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)]
    except OSError:
        raise MetadataError(f"The metadata host {host} does not resolve.") from None


def check_metadata_url(url: str, *, resolver: Resolver | None = None) -> list[str]:
    """Refuse anything but an https URL whose host resolves to public addresses only; return them
    (the fetch connects to these very addresses, so a second lookup cannot rebind it elsewhere)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise MetadataError("The metadata URL must be an https:// URL.")
    if parts.username or parts.password:
        raise MetadataError("The metadata URL must not carry a user name or password.")
    addresses = (resolver or _resolve)(parts.hostname)
    if not addresses:
        raise MetadataError(f"The metadata host {parts.hostname} does not resolve.")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise MetadataError(
                f"The metadata host {parts.hostname} resolves to a private or reserved address; refused."
            )
    return addresses


def _fetch_pinned(url: str, *, addresses: list[str], ssl_context: ssl.SSLContext | None = None) -> bytes:
    """GET ``url`` from one of the checked ``addresses`` (TLS name, certificate and Host header stay
    the URL's host), no redirects, at most MAX_METADATA_BYTES, all within one overall deadline."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
    failure = "no address answered"
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        pool = urllib3.HTTPSConnectionPool(
            host=address.split("%")[0],
            port=parts.port or 443,
            timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
            retries=False,
            maxsize=1,
            ssl_context=ssl_context or ssl.create_default_context(),
            server_hostname=parts.hostname,
        )
        try:
            answer = pool.urlopen(
                "GET", path, headers={"Host": parts.netloc}, redirect=False, preload_content=False
            )
            try:
                return _read_answer(answer)
            finally:
                answer.release_conn()
        except urllib3.exceptions.HTTPError as error:
            failure = type(error).__name__
        finally:
            pool.close()
    raise MetadataError(f"The metadata URL could not be fetched ({failure}).")


def _read_answer(answer: urllib3.BaseHTTPResponse) -> bytes:
    if answer.status != 200:
        raise MetadataError(f"The metadata URL answered HTTP {answer.status}.")
    body = b""
    for chunk in answer.stream(64 * 1024):
        body += chunk
        if len(body) > MAX_METADATA_BYTES:
            raise MetadataError(f"The metadata is larger than {MAX_METADATA_BYTES // 1024} KB.")
    return body


def fetch_metadata(url: str, *, fetcher: Fetcher | None = None, resolver: Resolver | None = None) -> str:
    """The metadata document at ``url``, after the SSRF checks."""
    addresses = check_metadata_url(url, resolver=resolver)
    body = fetcher(url) if fetcher is not None else _fetch_pinned(url, addresses=addresses)
    if len(body) > MAX_METADATA_BYTES:
        raise MetadataError(f"The metadata is larger than {MAX_METADATA_BYTES // 1024} KB.")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MetadataError("The metadata is not UTF-8 text.") from None
