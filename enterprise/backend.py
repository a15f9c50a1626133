"""The SAML backend: social-core's ``SAMLAuth`` (python3-saml) with connections from the database.

Why this route: social-auth's SAML backend is maintained with the rest of social-auth, which runs
every other sign-in here, so a SAML identity is an ordinary ``UserSocialAuth`` (provider ``saml``,
uid ``<slug>:<NameID>``, social-core's own shape) and goes through the same pipeline, connections
page, disconnect, sudo mode, activity and mail. python3-saml and xmlsec are pinned in
requirements.lock and need no system binary (pysaml2 would need Debian's ``xmlsec1``).

What differs from social-core: each connection has its own ACS (``/saml/<slug>/acs/``) and SP
entity id, the begin goes through a picker when no connection is named, and the response is
checked by ``enterprise.acs`` (bound to this browser's request and user, once) before the
pipeline runs.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from social_core.backends.saml import SAMLAuth, SAMLIdentityProvider
from social_core.exceptions import AuthConfigurationError, AuthPolicyError

from accounts import flow_state
from accounts.backend_mixins import ProviderProfileMixin, lower_domain
from accounts.flow_state import AuthFlow, SamlRequest

from . import acs
from .models import EnterpriseConnection
from .picking import connection_for_email
from .sp import SpNotConfigured, request_data, saml_settings


class ConnectionIdp(SAMLIdentityProvider):
    """social-core's view of one enterprise connection, with its attribute mapping."""

    def __init__(self, backend: Any, connection: EnterpriseConnection) -> None:
        conf: dict[str, Any] = {"entity_id": connection.entity_id, "url": connection.sso_url}
        if connection.attr_subject:
            conf["attr_user_permanent_id"] = connection.attr_subject
        if connection.attr_email:
            conf["attr_email"] = connection.attr_email
        if connection.attr_name:
            conf["attr_full_name"] = connection.attr_name
        super().__init__(backend, connection.slug, **conf)
        self.connection = connection

    def get_user_permanent_id(self, attributes: dict[str, Any]) -> str:
        # The NameID unless staff named another attribute; never the email.
        if not self.connection.attr_subject:
            return str(attributes["name_id"])
        return super().get_user_permanent_id(attributes)


class EnterpriseSAMLAuth(ProviderProfileMixin, SAMLAuth):
    name = "saml"
    title = "Company"
    # SAML gives no OAuth tokens: the vault shows nothing and offers nothing for these identities.
    holds_tokens = False

    def get_idp(self, idp_name: str | None) -> ConnectionIdp:
        connection = EnterpriseConnection.objects.enabled().filter(slug=idp_name or "").first()
        if connection is None:
            raise AuthPolicyError(self, code="authentication_disallowed", stage="pipeline")
        return ConnectionIdp(self, connection)

    def _connection(self, response: dict[str, Any]) -> EnterpriseConnection:
        return self.get_idp(response["idp_name"]).connection

    def verified_email(self, response: dict[str, Any]) -> tuple[str, bool]:
        """Verified only when staff trust this connection's email, and (when the connection lists
        domains) only for those domains: an IdP vouches for its own company's addresses."""
        connection = self._connection(response)
        email = lower_domain(str(self.get_user_details(response).get("email") or ""))
        domain = email.rpartition("@")[2]
        trusted = (
            connection.trust_email
            and "@" in email
            and (not connection.domains or domain in connection.domains)
        )
        return email, bool(email) and trusted

    def account_name(self, response: dict[str, Any]) -> str:
        details = self.get_user_details(response)
        shown = details.get("fullname") or details.get("email") or response["attributes"].get("name_id")
        return f"{shown} ({self._connection(response).name})"

    def avatar_url(self, response: dict[str, Any]) -> str:
        return ""

    def get_scope(self) -> list[str]:
        # SAML grants no OAuth scopes (and gives no tokens: the vault's step finds none to keep).
        return []

    def auth_url(self) -> str:
        """The IdP's SSO URL with a signed AuthnRequest, whose ID this session keeps; without a
        connection named (``idp`` or a work ``email``), the picker."""
        session = self.strategy.session
        flow = flow_state.auth_flow(session, self.name)
        slug = self.data.get("idp") or ""
        connection = EnterpriseConnection.objects.enabled().filter(slug=slug).first() if slug else None
        if connection is None and self.data.get("email"):
            connection = connection_for_email(str(self.data["email"]))
        if connection is None or flow is None:
            query = {"next": flow.next if flow else "", "purpose": flow.purpose if flow else "signin"}
            if self.data.get("email"):
                query["email"] = str(self.data["email"])[:254]
            return f"{reverse('enterprise:choose')}?{urlencode(query)}"
        try:
            config = saml_settings(connection)
        except SpNotConfigured:
            raise AuthConfigurationError(self, code="invalid_setting", stage="begin") from None
        auth = OneLogin_Saml2_Auth(request_data(reverse("enterprise:acs", args=[connection.slug])), config)
        url = auth.login(return_to=flow.next or "", force_authn=flow.fresh)
        flow_state.save_saml_request(
            session,
            SamlRequest(
                connection=connection.slug,
                request_id=auth.get_last_request_id(),
                user_id=flow.user_id,
                started_at=int(time.time()),
            ),
        )
        return url

    def auth_complete(self, *args: Any, **kwargs: Any) -> Any:
        """Check the response (``enterprise.acs``), then run the pipeline as for every provider."""
        request = self.strategy.request
        user = kwargs.get("user")
        user_id = user.pk if getattr(user, "is_authenticated", False) else None
        valid = acs.check_response(
            session=request.session,
            user_id=user_id,
            slug=kwargs.pop("connection_slug"),
            post=request.POST.dict(),
        )
        if not valid.solicited:
            # IdP-initiated (allowed for this connection, signed out): a sign-in, nothing else.
            flow_state.save_auth_flow(
                request.session,
                backend_name=self.name,
                flow=AuthFlow(
                    user_id=None, purpose="signin", next=valid.relay_state, started_at=int(time.time())
                ),
            )
        attributes: dict[str, Any] = dict(valid.attributes)
        attributes["name_id"] = valid.name_id
        response = {
            "idp_name": valid.connection.slug,
            "attributes": attributes,
            "session_index": valid.session_index,
        }
        kwargs.update({"response": response, "backend": self})
        return self.strategy.authenticate(*args, **kwargs)
