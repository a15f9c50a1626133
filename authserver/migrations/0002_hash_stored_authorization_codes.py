"""Authorization codes stored before codes were hashed get their SHA-256 in place of the code
(``authserver.validator.code_digest``): no code stays readable, and one issued just before the
upgrade still redeems after it. Codes live a minute; this touches only rows not yet cleared."""

import hashlib
import re

from django.db import migrations

DIGEST = re.compile(r"[0-9a-f]{64}")


def hash_plaintext_codes(apps, schema_editor):
    grant_model = apps.get_model("oauth2_provider", "Grant")
    for pk, code in grant_model.objects.values_list("pk", "code").iterator():
        if not DIGEST.fullmatch(code):
            digest = hashlib.sha256(code.encode()).hexdigest()
            grant_model.objects.filter(pk=pk).update(code=digest)


class Migration(migrations.Migration):
    dependencies = [
        ("authserver", "0001_applications_and_consent"),
        ("oauth2_provider", "0022_refreshtoken_token_family_index"),
    ]

    operations = [migrations.RunPython(hash_plaintext_codes, migrations.RunPython.noop)]
