"""The OAuth endpoints under ``/oauth/``, in the toolkit's URL namespace (its views reverse these names).

The toolkit's own views where they do the job; ``authserver.authorize`` and ``authserver.endpoints``
where the site adds to them.
"""

from django.urls import path
from oauth2_provider import views as toolkit

from . import authorize, endpoints

app_name = "oauth2_provider"

urlpatterns = [
    path("authorize/", authorize.ConsentView.as_view(), name="authorize"),
    path("token/", endpoints.SiteTokenView.as_view(), name="token"),
    path("revoke/", toolkit.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", endpoints.AudienceIntrospectView.as_view(), name="introspect"),
    path("userinfo/", toolkit.UserInfoView.as_view(), name="user-info"),
    path("jwks/", toolkit.JwksInfoView.as_view(), name="jwks-info"),
    path("register/", endpoints.SelfRegistrationView.as_view(), name="dcr-register"),
    path(
        "register/<str:client_id>/",
        toolkit.DynamicClientRegistrationManagementView.as_view(),
        name="dcr-register-management",
    ),
]
