"""ID tokens: signature, claims and claim types, at sign-in and after a refresh.

:class:`StrictIdTokens` is social-core's OpenID Connect backend with its ID-token validation
tightened: only the asymmetric algorithms the provider advertises (``alg: none`` and HS256 signed
with the client secret are refused); a JWKS key must fit the token's algorithm; an unknown ``kid``
re-fetches the JWKS at most once per provider per ``JWKS_REFETCH_SECONDS`` (a gate in the shared
cache); every claim's JSON type is checked before use (``invalid_claim``, never a ``TypeError``);
extra audiences are refused unless trusted. :class:`accounts.oidc.backend.OpenIdConnectAuth`
builds on it; the vault checks a refreshed ID token with
:meth:`StrictIdTokens.validate_refreshed_id_token`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import jwt
from django.core.cache import cache
from jwt.utils import base64url_decode
from social_core.backends.open_id_connect import OpenIdConnectAuth as _OpenIdConnectAuth
from social_core.backends.utils import jwt_error
from social_core.exceptions import AuthResponseError, SocialAuthBaseException
from social_core.utils import constant_time_compare

from .config import split_list
from .discovery import ASYMMETRIC_ALGORITHMS

logger = logging.getLogger(__name__)

_KEY_TYPE_FOR_ALGORITHM = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
#: At most one JWKS re-fetch per provider in this many seconds for an unknown ``kid``.
JWKS_REFETCH_SECONDS = 60

#: RFC 7519 NumericDate claims: JSON numbers. A string, boolean or list is refused, not coerced.
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf", "auth_time")
#: Claims this site compares as strings when present.
STRING_CLAIMS = ("iss", "sub", "azp", "nonce", "at_hash", "c_hash", "sid", "acr")
#: 9999-12-31T23:59:59Z: a later "date" cannot be turned into a datetime (and is not a date).
MAX_NUMERIC_DATE = 253402300799
#: OpenID Connect Core 2: ``sub`` is at most 255 ASCII characters (also the ``uid`` column's size).
MAX_SUB_LENGTH = 255


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value  # not NaN
        and 0 <= value <= MAX_NUMERIC_DATE
    )


def id_token_claim_problem(claims: Any) -> str | None:
    """The first ID-token claim whose JSON type is not what the specifications say, or None.

    Checked on the signature-verified payload before any claim is compared, so a numeric string
    ``iat`` or a list ``exp`` is a clean refusal instead of a ``TypeError`` (a 500 page).
    """
    if not isinstance(claims, dict):
        return "payload"
    for claim in NUMERIC_DATE_CLAIMS:
        if claim in claims and not _is_number(claims[claim]):
            return claim
    for claim in STRING_CLAIMS:
        if claim in claims and not isinstance(claims[claim], str):
            return claim
    sub = claims.get("sub")
    if "sub" in claims and (not sub or len(sub) > MAX_SUB_LENGTH):
        return "sub"
    if "aud" in claims:
        aud = claims["aud"]
        if isinstance(aud, list):
            if not aud or not all(isinstance(item, str) and item for item in aud):
                return "aud"
        elif not isinstance(aud, str) or not aud:
            return "aud"
    return None


class StrictIdTokens(_OpenIdConnectAuth):
    """social-core's OpenID Connect backend, with the ID-token checks this site requires."""

    #: Clock skew tolerated on ``exp``/``iat``/``nbf``, seconds.
    JWT_LEEWAY = 30
    #: An ID token older than this (``iat``) is refused, seconds.
    ID_TOKEN_MAX_AGE = 600

    def allowed_signing_algorithms(self) -> list[str]:
        """Asymmetric algorithms the provider advertises for ID tokens (RS256 when it says none)."""
        advertised = self.oidc_config().get("id_token_signing_alg_values_supported")
        if not isinstance(advertised, list):
            advertised = ["RS256"]
        return [alg for alg in advertised if alg in ASYMMETRIC_ALGORITHMS]

    @staticmethod
    def _key_fits(key: dict[str, Any], alg: str, kid: str | None) -> bool:
        if key.get("kty") != _KEY_TYPE_FOR_ALGORITHM.get(alg[:2]):
            return False
        if key.get("use") not in (None, "sig") or key.get("alg") not in (None, alg):
            return False
        return kid is None or key.get("kid") == kid

    def _verifying_key(self, id_token: str, alg: str, kid: str | None) -> jwt.PyJWK | None:
        """The JWKS key that verifies ``id_token``'s signature, or None.

        An unknown ``kid`` (the provider rotated its keys) re-fetches the JWKS once; a known key
        with a bad signature does not.
        """
        uri = self.jwks_uri()
        signing_input, _, signature = id_token.rpartition(".")
        try:
            raw_signature = base64url_decode(signature.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        keys = self.get_jwks_keys_for_uri(uri)
        for attempt in (1, 2):
            candidates = [key for key in keys if isinstance(key, dict) and self._key_fits(key, alg, kid)]
            for candidate in candidates:
                try:
                    jwk = jwt.PyJWK(candidate, algorithm=alg)
                    if jwk.Algorithm.verify(signing_input.encode("ascii"), jwk.key, raw_signature):
                        return jwk
                except (jwt.PyJWTError, ValueError, TypeError):
                    continue
            if attempt == 2 or (kid is not None and candidates):
                return None
            keys = self._newer_jwks_keys(uri, keys, kid)
            if keys is None:
                return None
        return None

    def _newer_jwks_keys(self, uri: str, known: list[Any], kid: str | None) -> list[Any] | None:
        """The provider's keys after a rotation, or None when a re-fetch is not allowed now.

        Issue 20: an ID token naming a ``kid`` nobody published must not cost a JWKS fetch per
        attempt. Another process's recent fetch is read from the shared cache first; otherwise one
        fetch per provider per ``JWKS_REFETCH_SECONDS`` (a gate in the cache, so it holds across
        processes and machines).
        """
        slot = f"oidc:jwks:{self.name}:{hashlib.sha256(uri.encode()).hexdigest()[:32]}"
        shared = cache.get(slot + ":keys")
        if (
            isinstance(shared, list)
            and shared != known
            and (kid is None or any(isinstance(key, dict) and key.get("kid") == kid for key in shared))
        ):
            return shared
        if not cache.add(slot + ":gate", 1, timeout=JWKS_REFETCH_SECONDS):
            logger.info("OIDC provider %r: unknown signing key; JWKS re-fetched recently", self.name)
            return None
        try:
            keys = self.get_jwks_keys_for_uri.refresh(self, uri)
        except SocialAuthBaseException as error:
            error.stage = "token_validation"
            raise
        cache.set(slot + ":keys", keys, timeout=86400)  # public keys: nothing secret
        return keys

    def decode_and_validate_id_token(self, id_token: str, access_token: str | None) -> dict[str, Any]:
        """Signature (provider's JWKS, advertised asymmetric algorithm), ``iss``, ``aud``, ``azp``,
        ``exp``, ``iat``, ``at_hash``. ``nonce`` and the ID token's age are checked by
        ``validate_claims`` (sign-in) or :meth:`validate_refreshed_id_token` (refresh)."""
        client_id, _secret = self.get_key_and_secret()
        alg, kid = self._signing_header(id_token)
        key = self._verifying_key(id_token, alg, kid)
        if key is None:
            raise AuthResponseError(
                self,
                "ID token signature does not verify with the provider's keys",
                code="invalid_signature",
                stage="token_validation",
            )
        self._check_claim_types(id_token)
        claims = self._decoded_claims(id_token, key, alg, client_id)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthResponseError(
                self, "ID token sub", claim="sub", code="invalid_claim", stage="token_validation"
            )
        self.validate_audiences(claims, client_id)
        self.validate_authorized_party(claims, client_id)
        if access_token is not None and not self._at_hash_ok(claims, access_token, alg):
            raise AuthResponseError(
                self, "ID token at_hash", claim="at_hash", code="invalid_claim", stage="token_validation"
            )
        return claims

    def _signing_header(self, id_token: Any) -> tuple[str, str | None]:
        """The ID token's ``alg`` (one this provider may use) and ``kid``, or a refusal."""
        if not isinstance(id_token, str) or id_token.count(".") != 2:
            raise AuthResponseError(
                self, "Malformed ID token", code="malformed_response", stage="token_validation"
            )
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as error:
            raise AuthResponseError(
                self, "Malformed ID token header", code="malformed_response", stage="token_validation"
            ) from error
        if str(header.get("typ", "")).lower() in ("at+jwt", "application/at+jwt"):
            # An RFC 9068 access token is not an ID token, however well signed.
            raise AuthResponseError(
                self, "Not an ID token (typ at+jwt)", code="invalid_claim", stage="token_validation"
            )
        alg = header.get("alg")
        allowed = self.allowed_signing_algorithms()
        if not isinstance(alg, str) or alg not in allowed:
            raise AuthResponseError(
                self,
                f"ID token signed with {alg!r}; this provider's accepted algorithms are {allowed!r}",
                code="invalid_signature",
                stage="token_validation",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthResponseError(
                self, "Malformed ID token kid", code="invalid_signature", stage="token_validation"
            )
        return alg, kid

    def _decoded_claims(self, id_token: str, key: jwt.PyJWK, alg: str, client_id: str) -> dict[str, Any]:
        """The verified payload with ``iss``, ``aud``, ``exp``, ``iat`` (and ``nbf``) checked."""
        try:
            return jwt.decode(
                id_token,
                key.key,
                algorithms=[alg],
                audience=client_id,
                issuer=self.id_token_issuer(),
                leeway=float(self.setting("JWT_LEEWAY", self.JWT_LEEWAY)),
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise AuthResponseError(
                self, "ID token expired", claim="exp", code="response_expired", stage="token_validation"
            ) from error
        except jwt.ImmatureSignatureError as error:
            raise AuthResponseError(
                self,
                "ID token issued in the future (iat/nbf)",
                claim="iat",
                code="response_not_yet_valid",
                stage="token_validation",
            ) from error
        except jwt.PyJWTError as error:
            raise jwt_error(self, error) from error

    def _check_claim_types(self, id_token: str) -> None:
        """Refuse a (signature-verified) payload whose claims have the wrong JSON types."""
        try:
            payload = json.loads(base64url_decode(id_token.split(".")[1].encode("ascii")))
        except (ValueError, UnicodeError, RecursionError) as error:
            raise AuthResponseError(
                self, "Malformed ID token payload", code="malformed_response", stage="token_validation"
            ) from error
        claim = id_token_claim_problem(payload)
        if claim is not None:
            raise AuthResponseError(
                self,
                f"ID token claim {claim} has the wrong type",
                claim=claim,
                code="invalid_claim",
                stage="token_validation",
            )

    def _at_hash_ok(self, claims: dict[str, Any], access_token: str, alg: str) -> bool:
        try:
            return self.validate_at_hash(claims, access_token, {"alg": alg})
        except (NotImplementedError, AttributeError, ValueError):
            # PyJWT has no hash for this algorithm (EdDSA). at_hash is optional in the code flow,
            # where the access token comes straight from the token endpoint over TLS.
            return "at_hash" not in claims or alg == "EdDSA"

    def validate_audiences(self, claims: dict[str, Any], client_id: str) -> None:
        """OpenID Connect Core 3.1.3.7 (3): refuse audiences the site does not trust."""
        try:
            audiences = self.id_token_audiences(claims.get("aud"))
        except ValueError as error:
            raise AuthResponseError(
                self, "ID token aud", claim="aud", code="invalid_claim", stage="token_validation"
            ) from error
        trusted = {client_id, *split_list(self.setting("TRUSTED_AUDIENCES", []) or [])}
        if client_id not in audiences or audiences - trusted:
            raise AuthResponseError(
                self,
                "ID token is meant for audiences this site does not trust",
                claim="aud",
                code="invalid_claim",
                stage="token_validation",
            )

    def validate_refreshed_id_token(
        self,
        id_token: str,
        expected_sub: str,
        *,
        context: dict[str, Any] | None = None,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        """Check an ID token from a refresh response; returns its claims.

        Fully validated as at sign-in (signature, ``iss``, ``aud``, ``azp``, ``exp``, ``iat`` and
        ``at_hash`` when ``access_token`` is given), and OpenID Connect Core 12.2: ``sub`` must be
        ``expected_sub`` (the identity's uid) and, with ``context`` (the identity's
        ``extra_data["_oidc_id_token_context"]``), ``iss``, ``aud``, ``auth_time`` and ``nonce``
        must match the original sign-in. Raises ``AuthResponseError`` (``invalid_claim``,
        ``invalid_signature``, ...) with stage ``refresh``.
        """
        try:
            claims = self.decode_and_validate_id_token(id_token, access_token)
            self.validate_required_id_token_claims(claims)
            self.validate_temporal_claims(claims)
            if not isinstance(expected_sub, str) or not constant_time_compare(claims["sub"], expected_sub):
                raise AuthResponseError(
                    self,
                    "Refreshed ID token is for another subject",
                    claim="sub",
                    code="invalid_claim",
                    stage="refresh",
                )
            if context is not None:
                self.validate_refresh_id_token_claims(context, claims)
        except SocialAuthBaseException as error:
            error.stage = "refresh"
            raise
        return claims
