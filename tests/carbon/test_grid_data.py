"""Hourly grid intensity: CSV import in Electricity Maps' export format, and the lookup that
prefers measured hours and records which figure it used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.carbon.selectors import intensity_for
from greenkpi.carbon.services import ImportFailed, grid_hourly_import_csv
from greenkpi.kpis import services as kpi_services
from greenkpi.kpis.models import HourlyRollup, RollupWindow

pytestmark = pytest.mark.django_db

# The column names of an Electricity Maps hourly export (2023-2024 files).
EXPORT = """\
Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,Data Estimation Method
2024-01-01 00:00:00,France,France,FR,28.5,45.1,95.2,25.5,entsoe.eu,false,
2024-01-01 01:00:00,France,France,FR,30.0,47.0,94.0,24.0,entsoe.eu,true,TIME_SLICER_AVERAGE
2024-01-01 00:00:00,Germany,Germany,DE,300.0,350.0,50.0,45.0,entsoe.eu,false,
"""
H0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_an_electricity_maps_export_imports_one_row_per_zone_and_hour():
    result = grid_hourly_import_csv(text=EXPORT)
    assert (result.rows_read, result.hours_written, result.zones) == (3, 3, {"FR", "DE"})
    row = GridIntensityHourly.objects.get(zone="FR", hour=H0 + timedelta(hours=1))
    assert row.intensity_lifecycle_g_per_kwh == 47.0
    assert row.intensity_direct_g_per_kwh == 30.0
    assert row.renewable_share == pytest.approx(0.24)
    assert row.carbon_free_share == pytest.approx(0.94)
    assert row.estimated is True
    assert "entsoe.eu" in row.source


def test_reimporting_updates_the_hours_instead_of_duplicating_them():
    grid_hourly_import_csv(text=EXPORT)
    grid_hourly_import_csv(text=EXPORT.replace("45.1", "46.0"))
    assert GridIntensityHourly.objects.count() == 3
    assert GridIntensityHourly.objects.get(zone="FR", hour=H0).intensity_lifecycle_g_per_kwh == 46.0


def test_newer_column_names_and_five_minute_rows_are_averaged_into_the_hour():
    text = (
        "Datetime (UTC),Carbon intensity gCO₂eq/kWh (Life cycle),Renewable energy percentage (RE%)\n"
        "2024-06-01T10:00:00Z,100,50\n"
        "2024-06-01T10:05:00Z,200,70\n"
    )
    result = grid_hourly_import_csv(text=text, zone="se-se3")
    assert result.hours_written == 1
    row = GridIntensityHourly.objects.get()
    assert (row.zone, row.hour) == ("SE-SE3", datetime(2024, 6, 1, 10, tzinfo=UTC))
    assert row.intensity_lifecycle_g_per_kwh == 150.0
    assert row.renewable_share == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Datetime (UTC),Zone Id\n2024-01-01 00:00:00,FR\n", "missing column"),
        (
            "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\nyesterday,FR,40\n",
            "line 2: 'yesterday' is not a date-time",
        ),
        (
            "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\n2024-01-01 00:00:00,FR,-4\n",
            "not >= 0",
        ),
        (
            "Datetime (UTC),Carbon Intensity gCO₂eq/kWh (LCA)\n2024-01-01 00:00:00,40\n",
            "zone id",
        ),
    ],
)
def test_a_bad_file_is_refused_whole_with_the_line_that_is_wrong(text, message):
    with pytest.raises(ImportFailed, match=message):
        grid_hourly_import_csv(text=text)
    assert not GridIntensityHourly.objects.exists()


def test_lookup_uses_the_measured_hour_else_the_annual_average_and_says_which():
    grid_hourly_import_csv(text=EXPORT)
    measured = intensity_for(zone="fr", hour=H0)
    # the provider states both: Scope 2 takes its direct figure, cat. 3 the difference + T&D
    assert (measured.source, measured.intensity_g_per_kwh, measured.method) == (
        "hourly",
        28.5,
        "hr-dir",
    )
    assert measured.lifecycle_g_per_kwh == 45.1
    assert measured.upstream_g_per_kwh == pytest.approx(19.69837)  # 45.1 - 28.5 + 0.0687 x 45.1
    assert measured.renewable_share == pytest.approx(0.255)
    fallback = intensity_for(zone="FR", hour=H0 + timedelta(hours=5))
    assert (fallback.source, fallback.figure_zone, fallback.method) == ("annual", "FR", "mix")
    assert fallback.intensity_g_per_kwh == pytest.approx(17212.96 / 514.11)  # direct, 2023 mix
    assert "CC BY 4.0" in fallback.detail
    unknown = intensity_for(zone=None, hour=H0)
    assert (unknown.source, unknown.figure_zone) == ("default", "WORLD")


def test_the_import_command_marks_the_rollup_windows_of_those_hours_dirty(
    acme, acme_token, post_batch, make_batch, tmp_path
):
    _, secret = acme_token
    hour = kpi_services.hour_floor(datetime.now(UTC) - timedelta(hours=2))
    body = make_batch(devices=1, start=hour)
    body["host"]["site"] = "paris-dc"
    assert post_batch(secret, body).status_code == 201
    kpi_services.windows_recompute_dirty()
    assert kpi_services.dirty_windows(limit=5, now=hour + timedelta(days=1)) == []
    csv_path = tmp_path / "fr.csv"
    csv_path.write_text(
        "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\n"
        f"{hour:%Y-%m-%d %H:%M:%S},FR,80\n"
    )
    out = StringIO()

    call_command("import_grid_hourly", str(csv_path), stdout=out)

    assert "1 hours for FR" in out.getvalue()
    assert "1 rollup window(s) marked" in out.getvalue()
    window = RollupWindow.objects.get(organisation=acme, hour=hour)
    assert window.version > window.computed_version
    kpi_services.windows_recompute_dirty()
    row = HourlyRollup.objects.get(organisation=acme, hour=hour)
    assert (row.intensity_source, row.intensity_g_per_kwh) == ("hourly", 80.0)


def test_the_import_command_reports_a_bad_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Datetime (UTC)\n2024-01-01\n")
    with pytest.raises(CommandError, match="missing column"):
        call_command("import_grid_hourly", str(path))
