"""Issue 12, HTTP level, agent API: every answer under /api/ is JSON (12.6), ids are checked by
their format before any query (12.7), and refused keys from an address never lock out a valid key."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

from accounts.models import User
from activity.models import Activity
from vault import agents, keyformat
from vault.activity_kinds import VaultKind
from vault.models import ConnectRequest

from .flows import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> str:
    return agents.create_agent_key(user=alice, name="helper bot", providers=["github", "google-oauth2"])[1]


def _json_answer(response) -> dict:
    """What an agent relies on: a JSON content type and a JSON object with an error code."""
    assert response["Content-Type"].startswith("application/json"), (
        response.status_code,
        response.content[:200],
    )
    body = json.loads(response.content)
    assert isinstance(body, dict)
    return body


def _post(path: str, body: bytes | str, content_type: str, key: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return Client().generic("POST", path, body, content_type=content_type, **headers, **extra)


# --- 12.6: bodies the parser cannot take ---------------------------------------------------------


def test_deeply_nested_json_is_a_json_400_not_a_500(alice, key):
    body = "[" * 5000 + "]" * 5000  # 10 kB: under the size limit, past Python's recursion limit
    response = _post("/api/v1/token", body, "application/json", key)
    assert response.status_code == 400
    assert _json_answer(response)["error"] == "invalid_request"
    response = _post("/api/v1/connect-requests", body, "application/json", key)
    assert (response.status_code, _json_answer(response)["error"]) == (400, "invalid_request")
    assert not Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).exists()


def test_a_form_over_djangos_field_limit_is_a_json_400(alice, key):
    body = "&".join(f"f{i}=x" for i in range(1100)) + "&grant_type=x"  # ~8 kB, 1,101 fields
    response = _post("/api/v1/token", body, "application/x-www-form-urlencoded", key)
    assert response.status_code == 400
    assert _json_answer(response)["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\xfe{\x00}", "application/json"),  # not UTF-8
        (b'{"connection": "github"}', "application/json; charset=no-such-charset"),
        (b"grant_type=x&connection=github", "application/x-www-form-urlencoded; charset=no-such-charset"),
        (b"--b\r\nbroken", "multipart/form-data; boundary=b"),
        (b"x", "multipart/form-data"),  # no boundary at all
        (b"x", "multipart/form-data; boundary=" + "b" * 300),  # an invalid boundary
    ],
)
def test_bodies_in_bad_encodings_are_json_400s(alice, key, body, content_type):
    response = _post("/api/v1/token", body, content_type, key)
    answer = _json_answer(response)
    # JSON is always UTF-8 (RFC 8259): a charset parameter on it is ignored, not an error.
    if response.status_code != 200:
        assert response.status_code == 400
        assert answer["error"] in ("invalid_request", "unsupported_grant_type")


def test_a_body_over_the_size_limit_is_a_json_400(alice, key):
    response = _post("/api/v1/token", "x" * 20_000, "application/x-www-form-urlencoded", key)
    assert (response.status_code, _json_answer(response)["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/api/v1/nothing-here", 404, "not_found"),
        ("GET", "/api/v1/token/", 404, "not_found"),
        ("GET", "/api/", 404, "not_found"),
        ("GET", "/api/v1/token", 405, "invalid_request"),
        ("DELETE", "/api/v1/connections", 405, "invalid_request"),
        ("OPTIONS", "/api/v1/connect-requests", 405, "invalid_request"),
        ("PUT", "/api/v1/openapi.json", 405, "invalid_request"),
    ],
)
def test_404_and_405_under_api_are_json(method, path, status, error):
    response = Client().generic(method, path)
    assert response.status_code == status
    assert _json_answer(response)["error"] == error


def test_an_unexpected_failure_under_api_is_a_json_500_and_is_logged(alice, key, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr("vault.api.connections_for_agent", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 500
    assert _json_answer(response)["error"] == "server_error"
    assert "simulated fault" not in response.content.decode()
    assert any("simulated fault" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_a_failure_outside_a_view_under_api_is_json_too():
    from django.urls import get_resolver

    resolver = get_resolver()
    for status in (400, 403, 404, 500):
        handler = resolver.resolve_error_handler(status)
        from django.test import RequestFactory

        request = RequestFactory().get("/api/v1/connections")
        response = handler(request) if status == 500 else handler(request, Exception("x"))
        assert response.status_code == status
        assert "error" in _json_answer(response)
    # Pages keep Django's pages.
    page = resolver.resolve_error_handler(404)(RequestFactory().get("/settings/nothing/"), Exception("x"))
    assert page["Content-Type"].startswith("text/html")


@override_settings(ALLOWED_HOSTS=["testserver"])
def test_a_bad_host_header_under_api_is_json():
    response = Client().get("/api/v1/connections", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert _json_answer(response)["error"] == "invalid_request"


# --- 12.7: ids checked by format before any query --------------------------------------------------


BAD_IDS = ["cr_%00", "cr_%00abc", "cr_a%27b", "cr_" + "a" * 40, "%00", "cr_%E2%80%A8x"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_malformed_connect_request_id_is_a_json_404_on_the_api(alice, key, bad):
    response = Client().get(f"/api/v1/connect-requests/{bad}", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 404
    assert _json_answer(response)["error"] == "not_found"


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("suffix", ["", "done/"])
def test_a_malformed_connect_request_id_is_a_404_page(client, alice, bad, suffix):
    response = client.get(f"/connect/{bad}/{suffix}")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    response = client.post(f"/connect/{bad}/decline/")
    assert response.status_code == 404


@pytest.mark.parametrize("bad", ["0", "99999999999999999999", "9223372036854775808", "%00", "1%00", "-1"])
def test_malformed_identity_and_key_ids_are_404s(client, alice, key, bad):
    for path in (
        f"/settings/connections/{bad}/disconnect/",
        f"/settings/connections/{bad}/default/",
        f"/settings/agents/{bad}/revoke/",
    ):
        assert client.post(path).status_code == 404, path
        assert client.get(path).status_code in (404, 405), path


def test_the_service_functions_check_the_id_format_too(alice, key, django_assert_num_queries):
    from vault import connect

    row = agents.authenticate_agent_key(key)
    with django_assert_num_queries(0):
        for bad in ("cr_\x00", "cr_'", "", "x" * 50):
            with pytest.raises(connect.ConnectRequestNotFound):
                connect.get_for_agent(agent_key=row, request_id=bad)
            with pytest.raises(connect.ConnectRequestNotFound):
                connect.open_for_user(request_id=bad, user=alice)


def test_the_database_id_format():
    from accounts.converters import is_database_id

    assert not any(is_database_id(v) for v in ("0", "99999999999999999999", "1\x00", " 1", "+1", "01", True))
    assert all(is_database_id(v) for v in ("1", "9223372036854775807", 5))


def test_a_well_formed_unknown_id_is_still_not_found(alice, key):
    response = Client().get("/api/v1/connect-requests/cr_" + "A" * 24, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert (response.status_code, _json_answer(response)["error"]) == (404, "not_found")
    assert not ConnectRequest.objects.exists()


# --- 12.*: refused keys from an address never lock out a valid key ----------------------------------


def test_twenty_refused_keys_do_not_lock_out_a_valid_key_behind_the_same_address(alice, key, limit_cache):
    nat = {"REMOTE_ADDR": "198.51.100.7"}
    for _ in range(25):
        Client().get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {keyformat.new_key()}", **nat)
    # Further refused keys from that address wait ...
    refused = Client().get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {keyformat.new_key()}", **nat)
    assert refused.status_code == 429 and _json_answer(refused)["error"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    # ... but the working agent behind the same address is served, on every endpoint.
    ok = Client().get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {key}", **nat)
    assert ok.status_code == 200, ok.content
    token = _post("/api/v1/token", json.dumps({"connection": "github"}), "application/json", key, **nat)
    assert token.status_code == 200 and "access_token" in _json_answer(token)
    form = _post(
        "/api/v1/token",
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&connection=github&subject_token=" + key,
        "application/x-www-form-urlencoded",
        **nat,
    )
    assert form.status_code == 200, form.content
    # A malformed key is still refused without touching the database, and still counted.
    malformed = Client().get("/api/v1/connections", HTTP_AUTHORIZATION="Bearer lsa_nope", **nat)
    assert malformed.status_code == 429


def test_the_per_key_limit_still_holds_for_a_valid_key(settings, alice, key, limit_cache):
    settings.VAULT_RATE_LIMITS = {"key": (2, 60)}
    codes = [
        Client().get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {key}").status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
