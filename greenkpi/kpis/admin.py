from __future__ import annotations

from django.contrib import admin

from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow


@admin.register(RecomputeRun)
class RecomputeRunAdmin(admin.ModelAdmin):
    list_display = ("kind", "started_at", "status", "duration_s", "windows_done", "windows_failed")
    list_filter = ("kind", "status")
    readonly_fields = [f.name for f in RecomputeRun._meta.fields]


@admin.register(RollupWindow)
class RollupWindowAdmin(admin.ModelAdmin):
    list_display = ("organisation", "hour", "version", "computed_version", "computed_at", "rows")
    list_filter = ("organisation",)
    readonly_fields = [f.name for f in RollupWindow._meta.fields]


@admin.register(HourlyRollup)
class HourlyRollupAdmin(admin.ModelAdmin):
    list_display = ("hour", "organisation", "device", "team", "model_key", "energy_kwh")
    list_filter = ("organisation", "intensity_source")
    # Rollups are derived data: edit the inputs and recompute instead.
    readonly_fields = [f.name for f in HourlyRollup._meta.fields]
