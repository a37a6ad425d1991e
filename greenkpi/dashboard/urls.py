from __future__ import annotations

from django.urls import path, register_converter

from greenkpi.dashboard.account import views as account
from greenkpi.dashboard.alerts import views as alerts
from greenkpi.dashboard.budgets import views as budgets
from greenkpi.dashboard.carbon import views as carbon
from greenkpi.dashboard.fleet import views as fleet
from greenkpi.dashboard.models import views as models
from greenkpi.dashboard.overview import views as overview
from greenkpi.dashboard.recommendations import views as recommendations
from greenkpi.dashboard.reports import views as reports
from greenkpi.dashboard.slurm import views as slurm
from greenkpi.dashboard.teams import views as teams


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
    path("", overview.overview, name="overview"),
    path("charts/energy-by-team.<fmt:fmt>", overview.energy_by_team_chart, name="energy-by-team"),
    path("fleet/", fleet.fleet, name="fleet"),
    path("hosts/<int:host_id>/", fleet.host, name="host"),
    path("hosts/<int:host_id>/<hostchart:chart>.<fmt:fmt>", fleet.host_chart, name="host-chart"),
    path("teams/", teams.teams, name="teams"),
    path("teams/<int:team_id>/", teams.team, name="team"),
    path("teams/<int:team_id>/models.<fmt:fmt>", teams.team_models_chart, name="team-models"),
    path("settings/tokens/", fleet.tokens, name="tokens"),
    # Each area keeps the rest of its routes beside its views (one folder per area).
    *models.urlpatterns,
    *budgets.urlpatterns,
    *alerts.urlpatterns,
    *carbon.urlpatterns,
    *reports.urlpatterns,
    *slurm.urlpatterns,
    *recommendations.urlpatterns,
    *account.urlpatterns,
]
