"""An organisation's time zone: UTC by default, IANA names only."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest


@pytest.mark.django_db
def test_an_organisation_defaults_to_utc_and_refuses_a_zone_that_is_not_iana() -> None:
    from django.core.exceptions import ValidationError

    from greenkpi.inventory.models import Organisation

    org = Organisation(name="Acme", slug="acme")
    assert org.time_zone == "UTC"
    assert org.tz == ZoneInfo("UTC")
    org.time_zone = "America/Los_Angles"  # misspelt
    with pytest.raises(ValidationError) as error:
        org.full_clean()
    assert "time_zone" in error.value.message_dict
    assert "IANA" in error.value.message_dict["time_zone"][0]
    org.time_zone = "America/Los_Angeles"
    org.full_clean()
    assert org.tz == ZoneInfo("America/Los_Angeles")


@pytest.fixture
def admin_client(client, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-the-admin")
    client.login(username="root", password="pw-for-the-admin")
    return client


def _change(admin_client, org, zone_name: str):
    data = {
        "name": org.name,
        "slug": org.slug,
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "time_zone": zone_name,
        "teams-TOTAL_FORMS": "0",
        "teams-INITIAL_FORMS": "0",
        "teams-MIN_NUM_FORMS": "0",
        "teams-MAX_NUM_FORMS": "1000",
    }
    return admin_client.post(f"/admin/inventory/organisation/{org.pk}/change/", data, follow=True)


def test_the_admin_refuses_a_bad_zone_and_says_a_good_one_rebuilds_the_days(
    admin_client, globex, django_capture_on_commit_callbacks, monkeypatch
):
    from greenkpi.inventory.models import Organisation
    from greenkpi.kpis import daily

    bad = _change(admin_client, globex, "Europe/Pariss")
    assert "is not an IANA time zone name" in bad.content.decode()
    assert Organisation.objects.get(pk=globex.pk).time_zone == "UTC"
    sent = []
    monkeypatch.setattr(
        daily.rebuild_organisation_days, "apply_async", lambda **kw: sent.append(kw)
    )
    with django_capture_on_commit_callbacks(execute=True):
        good = _change(admin_client, globex, "Europe/Paris")
    assert "being rebuilt in the new zone" in good.content.decode()
    assert Organisation.objects.get(pk=globex.pk).time_zone == "Europe/Paris"
    assert sent == [{"args": [globex.pk], "countdown": daily.REBUILD_DELAY_S}]
