"""The KPI series API of a Los Angeles organisation: local days and months, hand-worked.

Rows: 10 kWh at 1 November 2026 03:00 UTC (31 October 20:00 PDT), 3 kWh at 08:00 UTC (1 November
01:00 PDT) and 5 kWh at 2 November 07:30 UTC's hour, 07:00 (1 November 23:00 PST). Los Angeles'
1 November is [07:00 UTC, 2 November 08:00 UTC), 25 hours: it holds 3 + 5 = 8 kWh; 31 October
holds the 10 kWh. October is [1 October 07:00 UTC, 1 November 07:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

pytestmark = pytest.mark.django_db

SERIES = "/api/v1/kpis/series/"
NOW = datetime(2026, 11, 17, 12, tzinfo=UTC)


@pytest.fixture
def la(acme, people, rollups):
    acme.time_zone = "America/Los_Angeles"
    acme.save()
    gpu = rollups.gpu(acme, "la-1")
    for hour, kwh in ((3, 10.0), (8, 3.0), (31, 5.0)):
        moment = datetime(2026, 11, 1, tzinfo=UTC).replace(hour=hour % 24, day=1 + hour // 24)
        rollups.add(acme, moment, device=gpu, team=acme.vision, energy_kwh=kwh)
    return acme


def series(client, **params):
    with time_machine.travel(NOW, tick=False):
        return client.get(SERIES, params)


def test_days_and_months_of_the_series_are_local(client, la, people):
    client.force_login(people["alice"])
    days = series(client, **{"from": "2026-10-31", "to": "2026-11-02"}).json()["results"]
    assert [(r["start"], r["end"], r["energy_kwh"]) for r in days] == [
        ("2026-10-31T07:00:00Z", "2026-11-01T07:00:00Z", 10.0),
        ("2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z", 8.0),
    ]
    months = series(
        client, resolution="month", **{"from": "2026-10-01", "to": "2026-12-01"}
    ).json()["results"]
    assert [(r["start"], r["energy_kwh"]) for r in months] == [
        ("2026-10-01T07:00:00Z", 10.0),
        ("2026-11-01T07:00:00Z", 8.0),
    ]
    assert months[1]["end"] == "2026-12-01T08:00:00Z"
    # A UTC midnight is not a Los Angeles day start: refused, naming the zone.
    bad = series(client, **{"from": "2026-10-31T00:00:00Z", "to": "2026-11-02"})
    assert bad.status_code == 400
    assert "America/Los_Angeles" in bad.content.decode()
