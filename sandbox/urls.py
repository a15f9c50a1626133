"""The sandbox's URLs, mounted at ``/sandbox/`` only when ``settings.SANDBOX_PROVIDERS`` is on.

Paths mirror the real providers' (no trailing slashes) so the backends only swap the host part.
"""

from django.urls import path

from . import authorize, github_views, google_views, views

app_name = "sandbox"

urlpatterns = [
    path("", views.index, name="index"),
    path("avatar/<str:provider>/<str:subject>.svg", views.avatar, name="avatar"),
    # Google
    path("google/authorize", authorize.google_authorize, name="google_authorize"),
    path("google/token", google_views.google_token, name="google_token"),
    path("google/userinfo", google_views.google_userinfo, name="google_userinfo"),
    path("google/revoke", google_views.google_revoke, name="google_revoke"),
    # GitHub: the web flow on github.com, the REST API on api.github.com
    path("github/login/oauth/authorize", authorize.github_authorize, name="github_authorize"),
    path("github/login/oauth/access_token", github_views.github_token, name="github_token"),
    path("github/api/user", github_views.github_user, name="github_user"),
    path("github/api/user/emails", github_views.github_user_emails, name="github_user_emails"),
    path(
        "github/api/applications/<str:client_id>/grant",
        github_views.github_delete_grant,
        name="github_delete_grant",
    ),
]
