from django.contrib import admin

from greenkpi.recommendations.models import Decision, Finding, RealisedSaving


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ("detector", "owner", "subject", "state", "annual_kwh", "present")
    list_filter = ("detector", "state", "present")


admin.site.register(Decision)
admin.site.register(RealisedSaving)
