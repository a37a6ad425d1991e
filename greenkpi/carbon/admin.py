from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from greenkpi.carbon.models import (
    ElectricityTariff,
    GridIntensityHourly,
    MarketFactor,
    ResidualMix,
)
from greenkpi.carbon.services import ImportFailed, grid_hourly_import_csv, site_periods_mark_dirty

# A year of hourly rows for a few zones is ~1 MB; refuse anything far larger before reading it.
UPLOAD_MAX_BYTES = 20 * 1024 * 1024


class HourlyUploadForm(forms.Form):
    file = forms.FileField(help_text="Electricity Maps hourly (or finer) CSV export.")
    zone = forms.CharField(
        max_length=32, required=False, help_text="Zone id when the file has no 'Zone Id' column."
    )
    source = forms.CharField(max_length=150, initial="Electricity Maps CSV export")
    recompute = forms.BooleanField(
        required=False, initial=True, help_text="Mark the rollup windows of these hours dirty."
    )

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(f"The file is over {UPLOAD_MAX_BYTES // 2**20} MiB.")
        try:
            return bytes(upload.read()).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(f"The file is not UTF-8 text ({exc.reason}).") from exc


@admin.register(GridIntensityHourly)
class GridIntensityHourlyAdmin(admin.ModelAdmin):
    list_display = ("zone", "hour", "intensity_lifecycle_g_per_kwh", "renewable_share", "estimated")
    list_filter = ("zone", "estimated")

    def get_urls(self) -> list[URLPattern]:
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name="carbon_gridintensityhourly_upload",
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """The import command's parser behind a form: all rows or none, errors by line number."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = HourlyUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = grid_hourly_import_csv(
                    text=form.cleaned_data["file"],
                    zone=form.cleaned_data["zone"] or None,
                    source=form.cleaned_data["source"],
                )
            except ImportFailed as exc:
                for error in exc.errors:
                    form.add_error("file", error)
            else:
                marked = 0
                if form.cleaned_data["recompute"] and result.first_hour and result.last_hour:
                    # imported here: kpis depends on carbon, not the other way at import time
                    from greenkpi.kpis.dirty import windows_mark_dirty_for_zones

                    marked = windows_mark_dirty_for_zones(
                        zones=result.zones, start=result.first_hour, end=result.last_hour
                    )
                self.message_user(
                    request,
                    f"{result.hours_written} hours for {', '.join(sorted(result.zones))} imported "
                    f"({result.first_hour:%Y-%m-%d %H:00} to {result.last_hour:%Y-%m-%d %H:00} "
                    f"UTC); {marked} rollup window(s) marked for recompute.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:carbon_gridintensityhourly_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload hourly grid intensity (CSV)",
            "form": form,
        }
        return TemplateResponse(
            request, "admin/carbon/gridintensityhourly/upload.html", context, status=200
        )


class SitePeriodAdmin(admin.ModelAdmin):
    """A site's factor for a period (instrument, tariff): saving or deleting one marks the rollup
    windows of its old and new periods dirty, so the figures that used it are recomputed."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = (
            type(obj).objects.filter(pk=obj.pk).values_list("site_id", "valid_from", "valid_to")
            if change
            else []
        )
        old = list(before)
        super().save_model(request, obj, form, change)
        for site_id, start, end in old:
            site_periods_mark_dirty(site_id=site_id, periods=[(start, end)])
        site_periods_mark_dirty(site_id=obj.site_id, periods=[(obj.valid_from, obj.valid_to)])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        site_id, period = obj.site_id, (obj.valid_from, obj.valid_to)
        super().delete_model(request, obj)
        site_periods_mark_dirty(site_id=site_id, periods=[period])

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        gone = list(queryset.values_list("site_id", "valid_from", "valid_to"))
        super().delete_queryset(request, queryset)
        for site_id, start, end in gone:
            site_periods_mark_dirty(site_id=site_id, periods=[(start, end)])


@admin.register(MarketFactor)
class MarketFactorAdmin(SitePeriodAdmin):
    list_display = (
        "site",
        "kind",
        "valid_from",
        "valid_to",
        "share",
        "volume_mwh",
        "intensity_g_per_kwh",
        "instrument",
    )


@admin.register(ResidualMix)
class ResidualMixAdmin(admin.ModelAdmin):
    list_display = ("zone", "year", "intensity_g_per_kwh", "source", "licence")
    list_filter = ("year",)


@admin.register(ElectricityTariff)
class ElectricityTariffAdmin(SitePeriodAdmin):
    list_display = ("site", "valid_from", "valid_to", "price_per_kwh", "currency")
