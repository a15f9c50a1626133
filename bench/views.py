"""The benchmark's reference views, and the refresh probe used before the token API existed.

* ``floor``: the framework floor. A trivial authenticated JSON view as Django would write it: the
  agent key checked through the ORM (the key by its hash, with its user, one query) under the same
  validity rules as the token API, the same JSON body parsing, a small JSON answer.
* ``floor_prepared``: the same view with the token API's own hand-written key query
  (``vault.agents.authenticate_agent_key``, a prepared statement): how far below the framework
  floor a view can go, reported next to the target so the comparison stays honest.
* ``baseline``: what a site without a vault does. The ORM key check, then the identity row and
  the plaintext access token that social-auth's stock ``load_extra_data`` keeps in ``extra_data``
  (the benchmark's seed puts fake tokens there; the site itself never does), answered in the token
  API's shape.
* ``vault_only``: the API's key check, then ``vault.get_access_token`` and the token API's answer,
  without the agent API's bookkeeping (rate limits, the record of the grant): the vault's own cost.
* ``vault_token``: ``vault.get_access_token`` for ``?user=<id>`` (GitHub), answering a hash of the
  token, never the token. Only for the concurrency check when the token API is not there.

All of them exist only under ``bench.settings``; the site never routes to them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os

from django.core import signing
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from social_django.models import UserSocialAuth

import vault
from accounts.models import User

#: Salt of the stand-in bearer values the benchmark uses while agent keys do not exist yet.
FALLBACK_SALT = "bench.fallback-bearer"


def agents_module():
    """``vault.agents`` when it offers the agent-key functions, else None."""
    if importlib.util.find_spec("vault.agents") is None:
        return None
    module = importlib.import_module("vault.agents")
    if hasattr(module, "create_agent_key") and hasattr(module, "authenticate_agent_key"):
        return module
    return None


def _bearer(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authenticated_user(request: HttpRequest) -> User | None:
    """The user behind the request's agent key, checked the way a plain Django view would: the ORM
    (the key by its hash, with its user) and the same validity rules as the token API."""
    raw = _bearer(request)
    agents = agents_module()
    if agents is not None:
        from vault import keyformat
        from vault.models import AgentKey

        if not keyformat.is_well_formed(raw):
            return None
        try:
            key = AgentKey.objects.select_related("user").get(key_hash=keyformat.key_hash(raw))
            return agents.check_usable(key).user
        except (AgentKey.DoesNotExist, agents.InvalidKey):
            return None
    # Before agent keys exist: a signed user id, checked and loaded with one query, like a key.
    try:
        user_id = signing.loads(raw, salt=FALLBACK_SALT)
    except signing.BadSignature:
        return None
    return User.objects.filter(pk=user_id, is_active=True).first()


def prepared_key_user(request: HttpRequest) -> User | None:
    """The user behind the key, checked by the token API's own prepared key query."""
    agents = agents_module()
    try:
        return agents.authenticate_agent_key(_bearer(request)).user
    except agents.InvalidKey:
        return None


def _unauthorized() -> JsonResponse:
    response = JsonResponse(
        {"error": "invalid_token", "error_description": "A valid agent key is required."}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _body(request: HttpRequest) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _trivial_answer(request: HttpRequest, user: User | None) -> JsonResponse:
    if user is None:
        return _unauthorized()
    body = _body(request)
    if body is None:
        return JsonResponse({"error": "invalid_request"}, status=400)
    response = JsonResponse({"ok": True, "user": user.pk, "connection": body.get("connection")})
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_POST
def floor(request: HttpRequest) -> JsonResponse:
    return _trivial_answer(request, authenticated_user(request))


@csrf_exempt
@require_POST
def floor_prepared(request: HttpRequest) -> JsonResponse:
    return _trivial_answer(request, prepared_key_user(request))


@csrf_exempt
@require_POST
def baseline(request: HttpRequest) -> JsonResponse:
    user = authenticated_user(request)
    if user is None:
        return _unauthorized()
    body = _body(request)
    if body is None or not isinstance(body.get("connection"), str):
        return JsonResponse({"error": "invalid_request"}, status=400)
    connection = body["connection"]
    identity = UserSocialAuth.objects.filter(user_id=user.pk, provider=connection).order_by("pk").first()
    extra = (identity.extra_data or {}) if identity is not None else {}
    if not extra.get("access_token"):
        return JsonResponse({"error": "connection_required"}, status=403)
    expires_at = expires_in = None
    if extra.get("auth_time") and extra.get("expires"):
        expires_at = int(extra["auth_time"]) + int(extra["expires"])
        expires_in = max(0, math.floor(expires_at - timezone.now().timestamp()))
    return _token_answer(
        access_token=extra["access_token"],
        token_type="Bearer",
        expires_in=expires_in,
        expires_at=expires_at,
        scope=extra.get("scope", ""),
        connection=connection,
        account=identity.pk,
    )


def _token_answer(**fields: object) -> JsonResponse:
    """An answer in the token API's shape (``POST /api/v1/token``), never cached."""
    response = JsonResponse(fields)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_POST
def vault_only(request: HttpRequest) -> JsonResponse:
    user = prepared_key_user(request)
    if user is None:
        return _unauthorized()
    body = _body(request)
    if body is None or not isinstance(body.get("connection"), str):
        return JsonResponse({"error": "invalid_request"}, status=400)
    try:
        token = vault.get_access_token(user, body["connection"])
    except vault.TokenVaultError as error:
        return JsonResponse({"error": error.code}, status=error.status)
    return _token_answer(
        access_token=token.access_token,
        token_type=token.token_type,
        expires_in=token.expires_in,
        expires_at=token.expires_at.isoformat() if token.expires_at else None,
        scope=" ".join(token.scopes),
        connection=token.connection,
        account=token.account,
    )


def vault_token(request: HttpRequest) -> JsonResponse:
    user = User.objects.filter(pk=request.GET.get("user") or 0).first()
    if user is None:
        return JsonResponse({"error": "invalid_request"}, status=400)
    try:
        token = vault.get_access_token(user, request.GET.get("connection", "github"))
    except vault.TokenVaultError as error:
        return JsonResponse({"error": error.code}, status=error.status)
    return JsonResponse(
        {
            "token_sha256": hashlib.sha256(token.access_token.encode()).hexdigest(),
            "expires_in": token.expires_in,
            "pid": os.getpid(),
        }
    )
