from django.db import migrations
from django.db.models import F


def mark_windows_dirty(apps, schema_editor):
    """Methodology gk-2026.3 changes Scope 3 cat. 3 (the T&D loss rate, 8.3 % -> 6.87 %) and
    market-based figures where an instrument's contracted volume binds: every computed window is
    marked dirty so the periodic recompute redoes it (dirty while version > computed_version)."""
    window = apps.get_model("kpis", "RollupWindow")
    window.objects.filter(computed_version__gte=F("version")).update(
        version=F("computed_version") + 1
    )


class Migration(migrations.Migration):
    dependencies = [
        ("carbon", "0002_instruments_residual_mix"),
        ("kpis", "0011_upstream_and_intensity_method"),
    ]

    operations = [migrations.RunPython(mark_windows_dirty, migrations.RunPython.noop)]
