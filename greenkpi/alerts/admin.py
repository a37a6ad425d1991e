"""Admin for budgets, rules, channels, silences, alerts and the notification outbox.

Budgets and silences go through the services (permission checks, validation); the private-network
flag of a webhook is editable by superusers only; alerts and notifications are read-only records.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from greenkpi.alerts import outbox, services
from greenkpi.alerts.models import (
    Alert,
    AlertGroup,
    AlertRule,
    Budget,
    Channel,
    Notification,
    Silence,
)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "organisation",
        "scope",
        "team",
        "model_key",
        "metric",
        "amount",
        "period",
        "forecast_method",
    )
    list_filter = ("organisation", "metric", "period", "scope", "forecast_method")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Budget, form, change: bool) -> None:
        if not services.can_manage(request.user, obj.organisation_id, obj.team_id):
            raise PermissionDenied
        if not change:
            obj.created_by = request.user
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "organisation",
        "kind",
        "enabled",
        "state",
        "state_since",
        "no_data",
        "last_evaluated_at",
        "last_error",
    )
    list_filter = ("organisation", "kind", "enabled", "state", "no_data")
    filter_horizontal = ("channels",)
    readonly_fields = (
        "claimed_until",
        "claimed_by",
        "last_evaluated_at",
        "last_error",
        "state",
        "state_since",
    )


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "organisation",
        "kind",
        "enabled",
        "url",
        "group_by",
        "group_wait_s",
        "group_interval_s",
        "daily_digest",
        "allow_private_network",
    )
    list_filter = ("organisation", "kind", "enabled", "daily_digest")

    def get_readonly_fields(self, request: HttpRequest, obj: Channel | None = None):
        # Reaching private networks opens the server's own network: a platform decision.
        return () if request.user.is_superuser else ("allow_private_network",)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ("organisation", "matchers", "starts_at", "ends_at", "created_by", "comment")
    list_filter = ("organisation",)
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request: HttpRequest, obj: Silence, form, change: bool) -> None:
        if change:
            if not services.can_manage(request.user, obj.organisation_id, None):
                raise PermissionDenied
            super().save_model(request, obj, form, change)
            return
        try:
            created = services.silence_create(
                organisation=obj.organisation,
                user=request.user,
                matchers=obj.matchers,
                starts_at=obj.starts_at,
                ends_at=obj.ends_at,
                comment=obj.comment,
            )
        except ValidationError as exc:
            raise PermissionDenied(exc.messages[0]) from exc
        obj.pk = created.pk


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("rule", "state", "summary", "team", "active_since", "fired_at", "resolved_at")
    list_filter = ("organisation", "state", "rule")
    actions = ("acknowledge",)

    def get_readonly_fields(self, request: HttpRequest, obj: Alert | None = None):
        return [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge (stop repeat notifications)")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = 0
        for alert in queryset:
            try:
                services.alert_acknowledge(alert=alert, user=request.user)
                done += 1
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{alert}: {exc}", messages.WARNING)
        self.message_user(request, f"{done} alert(s) acknowledged")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "event", "rule", "channel", "status", "attempts", "sent_at")
    list_filter = ("organisation", "status", "event")
    actions = ("send_again",)

    def get_readonly_fields(self, request: HttpRequest, obj: Notification | None = None):
        return [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry failed notifications (same webhook-id)")
    def send_again(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        due = queryset.filter(status=Notification.Status.FAILED)
        ids = [str(pk) for pk in due.values_list("pk", flat=True)]
        due.update(status=Notification.Status.PENDING, next_attempt_at=timezone.now())
        for pk in ids:
            outbox.dispatch(pk)
        self.message_user(request, f"{len(ids)} notification(s) queued again")


@admin.register(AlertGroup)
class AlertGroupAdmin(admin.ModelAdmin):
    """Read-only: what each channel's groups hold and last told (for "why no message yet?")."""

    list_display = ("channel", "labels", "rule", "created_at", "last_notified_at", "seq")
    list_filter = ("organisation", "channel")
    filter_horizontal = ("alerts",)

    def get_readonly_fields(self, request: HttpRequest, obj: AlertGroup | None = None):
        return [f.name for f in AlertGroup._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
