"""Admin upload of an hourly series: the import command's parser, all rows or none, errors shown
with their line numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import F
from django.urls import reverse

from greenkpi.carbon.models import GridIntensityHourly

pytestmark = pytest.mark.django_db

URL = "admin:carbon_gridintensityhourly_upload"
HEADER = "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA),Renewable Percentage\n"


def upload(client, text: str, **fields):
    data = {"source": "Electricity Maps CSV export", "recompute": "on", **fields}
    data["file"] = SimpleUploadedFile("export.csv", text.encode(), content_type="text/csv")
    return client.post(reverse(URL), data)


def test_an_upload_imports_the_rows_and_returns_to_the_list(admin_client):
    response = upload(
        admin_client, HEADER + "2024-01-01 00:00:00,FR,45.1,25.5\n2024-01-01 01:00:00,FR,47,24\n"
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:carbon_gridintensityhourly_changelist")
    row = GridIntensityHourly.objects.get(zone="FR", hour=datetime(2024, 1, 1, 1, tzinfo=UTC))
    assert row.intensity_lifecycle_g_per_kwh == 47.0
    assert row.source == "Electricity Maps CSV export"
    page = admin_client.get(response["Location"])
    assert "2 hours for FR imported" in page.content.decode()


def test_a_bad_row_imports_nothing_and_the_page_shows_its_line(admin_client):
    text = (
        HEADER
        + "2024-01-01 00:00:00,FR,45.1,25.5\nyesterday,FR,47,24\n2024-01-01 02:00:00,FR,-1,\n"
    )
    response = upload(admin_client, text)
    assert response.status_code == 200
    page = response.content.decode()
    assert "line 3: &#x27;yesterday&#x27; is not a date-time" in page
    assert "line 4: lifecycle intensity" in page
    assert not GridIntensityHourly.objects.exists()


def test_a_file_without_zone_needs_the_zone_field(admin_client):
    text = "Datetime (UTC),Carbon Intensity gCO₂eq/kWh (LCA)\n2024-01-01 00:00:00,45.1\n"
    assert "line 1: missing column(s): zone id" in upload(admin_client, text).content.decode()
    assert upload(admin_client, text, zone="fr").status_code == 302
    assert GridIntensityHourly.objects.get().zone == "FR"


def test_the_list_links_to_the_upload_and_the_form_renders(admin_client):
    changelist = admin_client.get(reverse("admin:carbon_gridintensityhourly_changelist"))
    assert reverse(URL) in changelist.content.decode()
    assert admin_client.get(reverse(URL)).status_code == 200


def test_staff_without_add_permission_cannot_upload(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(user)
    assert upload(client, HEADER).status_code == 403


@pytest.mark.django_db
def test_saving_or_deleting_an_instrument_in_the_admin_marks_its_periods_windows_dirty(
    admin_client, acme
):
    """An instrument changes the market-based figures of its site and period: the windows whose
    rollups used the site then are marked dirty (recomputed with it), others are left alone."""
    from datetime import UTC, datetime, timedelta

    from testsupport.rollup_rows import hourly_row

    from greenkpi.carbon.models import MarketFactor
    from greenkpi.inventory.models import Device, Host
    from greenkpi.kpis.models import RollupWindow

    host = Host.objects.create(organisation=acme, hostname="h1", site=acme.paris)
    gpu = Device.objects.create(host=host, kind="gpu", uuid="GPU-h1-0")
    h0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
    for h in (h0, h0 + timedelta(days=10)):
        hourly_row(acme, h, device=gpu, site=acme.paris, energy_kwh=1.0)

    def dirty() -> set[datetime]:
        return set(
            RollupWindow.objects.filter(version__gt=F("computed_version")).values_list(
                "hour", flat=True
            )
        )

    assert dirty() == set()
    response = admin_client.post(
        reverse("admin:carbon_marketfactor_add"),
        {
            "site": acme.paris.pk,
            "kind": "ppa",
            "valid_from_0": "2026-03-01",
            "valid_from_1": "00:00:00",
            "valid_to_0": "2026-03-05",
            "valid_to_1": "00:00:00",
            "intensity_g_per_kwh": "0",
            "share": "0.6",
            "volume_mwh": "1",
        },
    )
    assert response.status_code == 302, response.content
    assert dirty() == {h0}  # the hour in its period, not the one ten days later
    RollupWindow.objects.update(computed_version=F("version"))
    ppa = MarketFactor.objects.get()
    response = admin_client.post(
        reverse("admin:carbon_marketfactor_delete", args=[ppa.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert dirty() == {h0}
