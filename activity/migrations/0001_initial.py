"""Take over ``accounts.Activity`` as ``activity.Activity``: state only.

The table ``accounts_activity`` and its rows, indexes and constraints stay exactly as accounts'
migrations made them (``db_table`` keeps the name); ``accounts.0006`` drops the old model from
accounts' state, also without touching the database.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import activity.kinds


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        # The table is made by accounts' migrations up to here.
        ("accounts", "0005_identitydetails_issuer"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Activity",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("kind", models.CharField(choices=activity.kinds.choices, max_length=32)),
                        ("provider", models.CharField(blank=True, max_length=32)),
                        ("uid", models.CharField(blank=True, max_length=255)),
                        (
                            "identity_id",
                            models.BigIntegerField(
                                blank=True, help_text="Kept as a number: identities go away.", null=True
                            ),
                        ),
                        (
                            "agent_key_id",
                            models.BigIntegerField(
                                blank=True,
                                db_index=True,
                                help_text="The agent key that did it, for agents' actions.",
                                null=True,
                            ),
                        ),
                        ("message", models.CharField(blank=True, max_length=500)),
                        ("data", models.JSONField(blank=True, default=dict)),
                        ("ip_address", models.GenericIPAddressField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                help_text="Who did it, when not the user themself (staff).",
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="activities",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "activities",
                        "db_table": "accounts_activity",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(fields=["user", "-created_at"], name="accounts_ac_user_id_cde44e_idx")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
