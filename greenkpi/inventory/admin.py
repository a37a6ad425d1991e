from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from greenkpi.inventory import services
from greenkpi.inventory.mappings import mapping_delete, mapping_save, mapping_validate
from greenkpi.inventory.models import (
    CollectorToken,
    Device,
    Host,
    IdentityMapping,
    Membership,
    Organisation,
    Site,
    Team,
)


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "time_zone", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [TeamInline]

    def save_model(self, request: Any, obj: Organisation, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "time_zone" in form.changed_data:
            # kpis rebuilds the daily tables on the change (kpis.signals); say so, and what
            # the pages do meanwhile (docs/kpis.md, "Time zones and periods").
            messages.info(
                request,
                f"Days, months and budgets of {obj.name} now follow {obj.time_zone}. The daily "
                "rollups are being rebuilt in the new zone (from about a minute from now; "
                "minutes for a year of data); until then pages read the hourly rows: the same "
                "figures, more slowly.",
            )


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "organisation")
    list_filter = ("organisation",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organisation", "team", "role")
    list_filter = ("organisation", "role")
    search_fields = ("user__username", "team__name")
    autocomplete_fields = ("user",)


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "organisation", "grid_zone", "pue", "boundary")
    list_filter = ("organisation", "grid_zone")


class DeviceInline(admin.TabularInline):
    model = Device
    extra = 0
    fields = (
        "kind",
        "uuid",
        "model_name",
        "power_limit_w",
        "embodied_kgco2e",
        "lifetime_years",
        "last_seen",
    )
    readonly_fields = ("uuid", "last_seen")


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = (
        "hostname",
        "organisation",
        "site",
        "default_team",
        "last_seen",
        "collector_version",
        "clock_skew_s",
        "server_class",
    )
    list_filter = ("organisation", "site")
    search_fields = ("hostname",)
    readonly_fields = (
        "first_seen",
        "last_seen",
        "collector_version",
        "clock_skew_s",
        "spool_depth",
        "dropped_windows",
        "source_errors",
    )
    inlines = [DeviceInline]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "kind",
        "model_name",
        "power_limit_w",
        "embodied_kgco2e",
        "lifetime_years",
        "last_seen",
    )
    list_filter = ("kind", "host__organisation")
    search_fields = ("uuid", "model_name", "host__hostname")


class CollectorTokenForm(forms.ModelForm):
    class Meta:
        model = CollectorToken
        fields = ("organisation", "name", "default_team", "default_site", "expires_at")

    def clean(self):
        data = super().clean()
        org = data.get("organisation") or getattr(self.instance, "organisation", None)
        for name in ("default_team", "default_site"):
            scoped = data.get(name)
            if org and scoped and scoped.organisation_id != org.pk:
                self.add_error(name, "belongs to another organisation")
        return data


@admin.register(CollectorToken)
class CollectorTokenAdmin(admin.ModelAdmin):
    """Shows the prefix only; the secret appears once, in the message after creation."""

    form = CollectorTokenForm

    list_display = (
        "name",
        "prefix",
        "organisation",
        "default_team",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("organisation",)
    fields = (
        "organisation",
        "name",
        "default_team",
        "default_site",
        "expires_at",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # A token never moves between organisations: revoke it and create another.
        return (*self.readonly_fields, "organisation") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = services.token_create(
            organisation=obj.organisation,
            name=obj.name,
            default_team=obj.default_team,
            default_site=obj.default_site,
            created_by=request.user,
            expires_at=obj.expires_at,
        )
        obj.pk = token.pk
        obj.prefix = token.prefix
        messages.warning(
            request, f"Collector token created. Copy it now, it will not be shown again: {secret}"
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            services.token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


class IdentityMappingForm(forms.ModelForm):
    """The same validation as the dashboard and the API (a regex that does not compile, a team
    of another organisation, a mapping that sets nothing: errors on their fields)."""

    class Meta:
        model = IdentityMapping
        fields = (
            "organisation",
            "kind",
            "cluster",
            "pattern",
            "team",
            "model_key",
            "run_kind",
            "priority",
            "note",
        )

    def clean(self) -> dict:
        data = super().clean()
        if self.errors or not data.get("organisation"):
            return data
        try:
            mapping_validate(
                organisation=data["organisation"],
                kind=data.get("kind", ""),
                pattern=data.get("pattern", ""),
                team=data.get("team"),
                model_key=data.get("model_key", ""),
                run_kind=data.get("run_kind", ""),
                cluster=data.get("cluster", ""),
            )
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        return data


@admin.register(IdentityMapping)
class IdentityMappingAdmin(admin.ModelAdmin):
    """Saved and deleted through the mapping services, so history is recomputed either way."""

    form = IdentityMappingForm
    list_display = ("organisation", "kind", "cluster", "pattern", "team", "model_key", "priority")
    list_filter = ("organisation", "kind")
    search_fields = ("pattern", "model_key", "note")

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        data = form.cleaned_data
        saved = mapping_save(
            organisation=data["organisation"],
            mapping=obj if change else None,
            kind=data["kind"],
            pattern=data["pattern"],
            team=data.get("team"),
            model_key=data.get("model_key", ""),
            run_kind=data.get("run_kind", ""),
            priority=data.get("priority") or 0,
            cluster=data.get("cluster", ""),
            note=data.get("note", ""),
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:  # type: ignore[no-untyped-def]
        mapping_delete(mapping=obj)

    def delete_queryset(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for mapping in queryset:
            mapping_delete(mapping=mapping)
