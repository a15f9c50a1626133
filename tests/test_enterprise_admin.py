"""Issue 16 (1): staff configure connections in the admin or with `manage.py saml_connection`;
metadata URLs are fetched with SSRF protection and re-read by a refresh (a rollover's new cert)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from enterprise.connections import ConnectionInputError, MetadataSource, add_connection, refresh_connection
from enterprise.metadata import MAX_METADATA_BYTES, MetadataError, check_metadata_url, fetch_metadata
from enterprise.models import EnterpriseConnection
from enterprise.sp import sp_key_and_certificates

from .saml_support import IDP_ENTITY, IDP_KEYS, IDP_NEXT_KEYS, idp_metadata

pytestmark = pytest.mark.django_db

PUBLIC = lambda host: ["93.184.215.14"]  # noqa: E731  (DNS answer of a public host)


@pytest.fixture
def staff_client():
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only-123")
    client = Client()
    client.force_login(staff)
    return client


def _form(**changes):
    data = {
        "slug": "acme",
        "name": "Acme Corp",
        "enabled": "on",
        "metadata_url": "",
        "metadata_xml": idp_metadata([IDP_KEYS]),
        "email_domains": "acme.test",
        "attr_subject": "",
        "attr_email": "",
        "attr_name": "",
    }
    data.update(changes)
    return data


def test_staff_add_a_connection_in_the_admin_and_see_what_the_metadata_says(staff_client):
    response = staff_client.post("/admin/enterprise/enterpriseconnection/add/", _form())
    assert response.status_code == 302, response.content.decode()[-2000:]
    connection = EnterpriseConnection.objects.get()
    assert connection.entity_id == IDP_ENTITY and connection.signing_certificates == [IDP_KEYS.cert_body]
    assert connection.trust_email is False and connection.allow_idp_initiated is False
    page = staff_client.get(
        f"/admin/enterprise/enterpriseconnection/{connection.pk}/change/"
    ).content.decode()
    assert IDP_ENTITY in page and "https://idp.acme.test/sso" in page


def test_bad_metadata_in_the_admin_is_one_clear_error_and_saves_nothing(staff_client):
    response = staff_client.post("/admin/enterprise/enterpriseconnection/add/", _form(metadata_xml="<nope"))
    assert response.status_code == 200 and "not well-formed XML" in response.content.decode()
    no_cert = idp_metadata([]).replace("<md:KeyDescriptor", "")
    response = staff_client.post("/admin/enterprise/enterpriseconnection/add/", _form(metadata_xml=no_cert))
    assert "no signing certificate" in response.content.decode()
    assert not EnterpriseConnection.objects.exists()


def test_disable_in_the_admin_refuses_company_sign_in_at_once(staff_client):
    add_connection(slug="acme", name="Acme Corp", source=MetadataSource(xml=idp_metadata([IDP_KEYS])))
    response = staff_client.post(
        "/admin/enterprise/enterpriseconnection/",
        {"action": "disable", "_selected_action": [EnterpriseConnection.objects.get().pk]},
    )
    assert response.status_code == 302
    assert EnterpriseConnection.objects.get().enabled is False


def test_command_add_list_disable_refresh(tmp_path, capsys):
    metadata = tmp_path / "acme.xml"
    metadata.write_text(idp_metadata([IDP_KEYS]))
    call_command(
        "saml_connection",
        "add",
        "acme",
        "--name",
        "Acme Corp",
        "--metadata",
        str(metadata),
        "--domain",
        "acme.test",
        "--domain",
        "@Acme.example",
        "--trust-email",
    )
    assert (
        "Added acme (Acme Corp): IdP https://idp.acme.test/saml, 1 signing certificate(s)."
        in capsys.readouterr().out
    )
    connection = EnterpriseConnection.objects.get()
    assert connection.domains == ["acme.test", "acme.example"] and connection.trust_email
    call_command("saml_connection", "list")
    assert "acme\tAcme Corp\tenabled" in capsys.readouterr().out
    metadata.write_text(idp_metadata([IDP_KEYS, IDP_NEXT_KEYS]))  # the IdP's rollover
    call_command("saml_connection", "refresh", "acme")
    assert "2 signing certificate(s)" in capsys.readouterr().out
    assert EnterpriseConnection.objects.get().signing_certificates == [
        IDP_KEYS.cert_body,
        IDP_NEXT_KEYS.cert_body,
    ]
    call_command("saml_connection", "disable", "acme")
    assert EnterpriseConnection.objects.get().enabled is False


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["add", "Acme!", "--name", "A", "--metadata", "x.xml"], "'Acme!' is not a slug"),
        (["add", "acme", "--name", "A", "--metadata", "/nonexistent.xml"], "Cannot read /nonexistent.xml"),
        (["add", "acme", "--name", "A", "--metadata", "http://idp.example/md"], "must be an https:// URL"),
        (["disable", "nobody"], "No connection named 'nobody'."),
        (["refresh", "nobody"], "No connection named 'nobody'."),
    ],
)
def test_command_bad_input_is_one_line_and_changes_nothing(args, line):
    with pytest.raises(CommandError) as raised:
        call_command("saml_connection", *args)
    assert line in str(raised.value) and "\n" not in str(raised.value)
    assert not EnterpriseConnection.objects.exists()


def test_command_refuses_a_second_connection_with_the_same_slug(tmp_path):
    metadata = tmp_path / "acme.xml"
    metadata.write_text(idp_metadata([IDP_KEYS]))
    call_command("saml_connection", "add", "acme", "--name", "Acme", "--metadata", str(metadata))
    with pytest.raises(CommandError, match="exists already"):
        call_command("saml_connection", "add", "acme", "--name", "Other", "--metadata", str(metadata))
    assert EnterpriseConnection.objects.get().name == "Acme"


@pytest.mark.parametrize(
    ("url", "addresses", "words"),
    [
        ("http://idp.example/md", ["93.184.215.14"], "https://"),
        ("https://idp.example/md", ["127.0.0.1"], "private or reserved"),
        ("https://idp.example/md", ["10.0.0.5"], "private or reserved"),
        ("https://idp.example/md", ["169.254.169.254"], "private or reserved"),
        ("https://idp.example/md", ["93.184.215.14", "::1"], "private or reserved"),
        ("https://user:pw@idp.example/md", ["93.184.215.14"], "user name or password"),
    ],
)
def test_metadata_urls_must_be_https_to_public_addresses(url, addresses, words):
    with pytest.raises(MetadataError, match=words):
        check_metadata_url(url, resolver=lambda host: addresses)


def test_metadata_is_fetched_through_the_injected_fetcher_and_refreshed():
    served = {"xml": idp_metadata([IDP_KEYS])}
    fetched = []

    def fetcher(url: str) -> bytes:
        fetched.append(url)
        return served["xml"].encode()

    add_connection(
        slug="acme",
        name="Acme",
        source=MetadataSource(url="https://idp.acme.test/md"),
        fetcher=fetcher,
        resolver=PUBLIC,
    )
    served["xml"] = idp_metadata([IDP_KEYS, IDP_NEXT_KEYS])
    connection = refresh_connection(slug="acme", fetcher=fetcher, resolver=PUBLIC)
    assert fetched == ["https://idp.acme.test/md"] * 2
    assert len(connection.signing_certificates) == 2 and connection.metadata_refreshed_at is not None


def test_oversized_or_broken_metadata_changes_nothing_on_refresh():
    add_connection(
        slug="acme",
        name="Acme",
        source=MetadataSource(url="https://idp.acme.test/md"),
        fetcher=lambda url: idp_metadata([IDP_KEYS]).encode(),
        resolver=PUBLIC,
    )
    with pytest.raises(MetadataError, match="larger than"):
        fetch_metadata(
            "https://idp.acme.test/md", fetcher=lambda url: b" " * (MAX_METADATA_BYTES + 1), resolver=PUBLIC
        )
    with pytest.raises(ConnectionInputError, match="not well-formed"):
        refresh_connection(slug="acme", fetcher=lambda url: b"<broken", resolver=PUBLIC)
    assert EnterpriseConnection.objects.get().signing_certificates == [IDP_KEYS.cert_body]


def test_dev_setup_writes_a_saml_key_pair_the_site_can_sign_with(tmp_path, settings, client):
    settings.DEBUG = True
    target = tmp_path / ".env"
    call_command("dev_setup", "--path", str(target))
    written = dict(line.split("=", 1) for line in target.read_text().splitlines() if "=" in line)
    assert "\\n" in written["SAML_SP_KEY"] and "\n" not in written["SAML_SP_KEY"]  # one line in .env
    settings.DEBUG = False
    settings.SAML_SP_KEY, settings.SAML_SP_CERT = written["SAML_SP_KEY"], written["SAML_SP_CERT"]
    key, cert, _next = sp_key_and_certificates()
    assert key.startswith("-----BEGIN PRIVATE KEY-----\n") and cert.endswith("-----END CERTIFICATE-----")
    add_connection(slug="acme", name="Acme", source=MetadataSource(xml=idp_metadata([IDP_KEYS])))
    assert b"<ds:SignatureValue>" in client.get("/saml/acme/metadata/").content


def test_refresh_all_is_for_cron_and_keeps_the_last_good_metadata_of_a_broken_source(tmp_path, capsys):
    good, broken = tmp_path / "good.xml", tmp_path / "broken.xml"
    good.write_text(idp_metadata([IDP_KEYS]))
    broken.write_text(idp_metadata([IDP_KEYS]))
    call_command("saml_connection", "add", "good", "--name", "Good", "--metadata", str(good))
    call_command("saml_connection", "add", "broken", "--name", "Broken", "--metadata", str(broken))
    add_connection(slug="pasted", name="Pasted", source=MetadataSource(xml=idp_metadata([IDP_KEYS])))
    good.write_text(idp_metadata([IDP_KEYS, IDP_NEXT_KEYS]))
    broken.write_text("<oops")
    with pytest.raises(CommandError, match="1 connection"):
        call_command("saml_connection", "refresh", "--all")
    out, err = capsys.readouterr()
    assert "Re-read good's metadata: 2 signing certificate(s)." in out and "broken: " in err
    assert "pasted" not in out + err
    assert len(EnterpriseConnection.objects.get(slug="broken").signing_certificates) == 1
    with pytest.raises(CommandError, match="one slug, or --all"):
        call_command("saml_connection", "refresh")
