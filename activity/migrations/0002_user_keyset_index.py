"""The person's activity list pages by (created_at, id): an index in exactly that order.

It replaces the (user, -created_at) index, which it contains; the new one is made first so the
list is never without an index.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("activity", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="activity",
            index=models.Index(fields=["user", "-created_at", "-id"], name="activity_user_keyset_idx"),
        ),
        migrations.RemoveIndex(
            model_name="activity",
            name="accounts_ac_user_id_cde44e_idx",
        ),
    ]
