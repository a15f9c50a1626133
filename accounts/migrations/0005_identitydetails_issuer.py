"""Bind every OpenID Connect identity to the issuer it was made under (issue 20.1).

Backfill, without touching anything else: the ``iss`` of the identity's sign-in ID token when
social-core kept it (``extra_data["_oidc_id_token_context"]``), else the issuer its provider is
configured with now. Identities of providers that are not configured and kept no ``iss`` stay
unbound (empty): their sign-ins are refused and ``manage.py check`` lists them until staff bind them
with ``accounts_oidc_issuer`` (docs/oidc.md).
"""

from django.db import migrations, models


def backfill_issuers(apps, schema_editor):
    from accounts.issuers import ID_TOKEN_CONTEXT_KEY, configured_issuers, normalise

    UserSocialAuth = apps.get_model("social_django", "UserSocialAuth")
    IdentityDetails = apps.get_model("accounts", "IdentityDetails")
    try:
        configured = configured_issuers()
    except Exception:  # settings that cannot be read here: rely on what the rows kept
        configured = {}
    for identity in UserSocialAuth.objects.order_by("pk").iterator(chunk_size=500):
        context = (identity.extra_data or {}).get(ID_TOKEN_CONTEXT_KEY)
        issuer = normalise(context.get("iss")) if isinstance(context, dict) else ""
        issuer = issuer or configured.get(identity.provider, "")
        if not issuer:
            continue
        details = IdentityDetails.objects.filter(identity_id=identity.pk).first()
        if details is None:
            IdentityDetails.objects.create(identity_id=identity.pk, issuer=issuer[:500])
        elif not details.issuer:
            details.issuer = issuer[:500]
            details.save(update_fields=["issuer"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_activity_agent_key"),
        ("social_django", "0022_nonce_timestamp_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="identitydetails",
            name="issuer",
            field=models.CharField(
                blank=True,
                help_text="The issuer this identity was made under (OpenID Connect iss); a sign-in from "
                "another issuer never matches it. Empty for providers with one fixed issuer.",
                max_length=500,
            ),
        ),
        migrations.RunPython(backfill_issuers, migrations.RunPython.noop),
    ]
