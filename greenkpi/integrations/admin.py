from __future__ import annotations

from django import forms
from django.contrib import admin

from greenkpi.integrations.models import MlflowExport, MlflowLink, PersonalAccessToken


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    """Listed and revocable here; created only by their owner (account page: shown once)."""

    list_display = ("name", "prefix", "user", "organisation", "access", "expires_at", "revoked_at")
    list_filter = ("access", "organisation")
    readonly_fields = ("prefix", "user", "organisation", "created_at", "last_used_at")
    exclude = ("secret_hash",)

    def has_add_permission(self, request) -> bool:
        return False


class MlflowLinkForm(forms.ModelForm):
    # The token is a secret: never rendered back; left empty, the stored one is kept.
    token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))

    class Meta:
        model = MlflowLink
        fields = ("organisation", "tracking_uri", "token", "enabled", "allow_private_network")

    def clean_token(self) -> str:
        value = self.cleaned_data.get("token") or ""
        return value or (self.instance.token if self.instance.pk else "")


@admin.register(MlflowLink)
class MlflowLinkAdmin(admin.ModelAdmin):
    form = MlflowLinkForm
    list_display = ("organisation", "tracking_uri", "enabled")


@admin.register(MlflowExport)
class MlflowExportAdmin(admin.ModelAdmin):
    list_display = ("run", "mlflow_run_id", "status", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in MlflowExport._meta.fields]
