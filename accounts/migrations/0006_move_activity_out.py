"""``Activity`` moved to its own app (``activity``): drop it from accounts' state only.

The table and its rows stay (``activity.0001`` took the model over under the same table name). The
content type moves with it, so staff permissions granted on the activity log keep working.
"""

from django.db import migrations


def move_content_type(apps, schema_editor, *, source="accounts", target="activity"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if ContentType.objects.using(db).filter(app_label=target, model="activity").exists():
        return
    ContentType.objects.using(db).filter(app_label=source, model="activity").update(app_label=target)


def move_content_type_back(apps, schema_editor):
    move_content_type(apps, schema_editor, source="activity", target="accounts")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_identitydetails_issuer"),
        ("activity", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Activity")],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
