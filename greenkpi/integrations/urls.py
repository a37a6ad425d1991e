from django.urls import path

from greenkpi.integrations import api, api_export

urlpatterns = [
    path("kpis/series/", api.SeriesApi.as_view(), name="kpis-series"),
    path("budgets/", api.BudgetsApi.as_view(), name="api-budgets"),
    path("budgets/<int:budget_id>/", api.BudgetApi.as_view(), name="api-budget"),
    path("alerts/", api.AlertsApi.as_view(), name="api-alerts"),
    path(
        "alerts/<int:alert_id>/acknowledge/",
        api.AlertAcknowledgeApi.as_view(),
        name="api-alert-acknowledge",
    ),
    path("alerts/<int:alert_id>/silence/", api.AlertSilenceApi.as_view(), name="api-alert-silence"),
    path("alert-rules/", api.AlertRulesApi.as_view(), name="api-alert-rules"),
    path("export/openmetrics/", api_export.OpenMetricsApi.as_view(), name="api-openmetrics"),
]
