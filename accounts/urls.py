from django.urls import path

# ``converters`` registers <dbid:...>: ids in URLs are checked by their format before any query.
from . import activity_views, converters, merge_views, session_views, views  # noqa: F401

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("logout/", views.sign_out, name="sign_out"),
    path("staff/login/", views.PasswordSignInView.as_view(), name="password_sign_in"),
    path("settings/connections/", views.connections, name="connections"),
    path("settings/connections/<dbid:identity_id>/disconnect/", views.disconnect, name="disconnect"),
    path("settings/connections/<dbid:identity_id>/default/", views.make_default, name="make_default"),
    path("settings/reauthenticate/", views.reauthenticate, name="reauthenticate"),
    path("settings/activity/", activity_views.activity_page, name="activity"),
    path("settings/activity/export.csv", activity_views.activity_export, {"fmt": "csv"}, name="activity_csv"),
    path(
        "settings/activity/export.json", activity_views.activity_export, {"fmt": "json"}, name="activity_json"
    ),
    path("settings/sessions/", session_views.sessions_page, name="sessions"),
    path("settings/sessions/<dbid:session_id>/sign-out/", session_views.end_session, name="session_sign_out"),
    path(
        "settings/sessions/sign-out-others/",
        session_views.end_other_sessions,
        name="sessions_sign_out_others",
    ),
]

urlpatterns += [
    path("signin/existing-profile/", views.existing_profile, name="existing_profile"),
    path("signin/existing-profile/link/", views.link_pending, name="link_pending"),
    path("settings/merge/start/", merge_views.merge_start, name="merge_start"),
    path("settings/merge/prove/", merge_views.merge_prove, name="merge_prove"),
    path("settings/merge/review/", merge_views.merge_review, name="merge_review"),
    path("settings/merge/confirm/", merge_views.merge_confirm, name="merge_confirm"),
]
