from __future__ import annotations

from django.urls import path, register_converter

from greenkpi.dashboard import views, views_budgets, views_carbon, views_models
from greenkpi.dashboard.slurm import views as slurm_views


class FormatConverter:
    """``json`` (the figure a page draws) or ``csv`` (the same frame, for download)."""

    regex = "json|csv"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class HostChartConverter(FormatConverter):
    regex = "power|utilization"


register_converter(FormatConverter, "fmt")
register_converter(HostChartConverter, "hostchart")

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("charts/energy-by-team.<fmt:fmt>", views.energy_by_team_chart, name="energy-by-team"),
    path("fleet/", views.fleet, name="fleet"),
    path("hosts/<int:host_id>/", views.host, name="host"),
    path("hosts/<int:host_id>/<hostchart:chart>.<fmt:fmt>", views.host_chart, name="host-chart"),
    path("teams/", views.teams, name="teams"),
    path("teams/<int:team_id>/", views.team, name="team"),
    path("teams/<int:team_id>/models.<fmt:fmt>", views.team_models_chart, name="team-models"),
    path("settings/tokens/", views.tokens, name="tokens"),
    # Each area keeps its routes beside its views.
    *views_models.urlpatterns,
    *views_budgets.urlpatterns,
    *views_carbon.urlpatterns,
    *slurm_views.urlpatterns,
]
