"""The digest in the organisation's local morning, about its local yesterday (hand-worked).

Los Angeles, November 2026 (PST, UTC-8 after 1 November 09:00 UTC). The hourly beat runs at
hh:05 UTC. Yesterday for a run on 2 November 14:05 UTC (06:05 PST) is 1 November local, the
25-hour day [1 November 07:00 UTC, 2 November 08:00 UTC). Rows: 1 kWh every UTC hour from
31 October 07:00 to 2 November 12:00 UTC; by hand 1 November holds 25 kWh over 25 hours.
A UTC organisation got its digest at 06:05 UTC about its own 1 November (24 kWh).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.alerts import digest
from greenkpi.alerts.models import Channel, Notification

H = timedelta(hours=1)


@pytest.fixture
def la(acme, globex, rollups):
    acme.time_zone = "America/Los_Angeles"
    acme.save()
    for org, team in ((acme, acme.vision), (globex, globex.research)):
        host = rollups.host(
            org, f"{org.slug}-1", team=team, last_seen=datetime(2026, 11, 2, tzinfo=UTC)
        )
        gpu = rollups.gpu(host)
        hour = datetime(2026, 10, 31, 7, tzinfo=UTC)
        while hour < datetime(2026, 11, 2, 12, tzinfo=UTC):
            rollups.add(org, hour, device=gpu, team=team, energy_kwh=1.0)
            hour += H
        Channel.objects.create(
            organisation=org, name="ops", kind="email", addresses=f"ops@{org.slug}.test"
        )
    return acme


def sent_at(now: datetime) -> dict[str, dict]:
    digest.digests_send(now=now)
    return {
        n.recipients[0]: n.payload
        for n in Notification.objects.filter(event="digest", created_at=now)
    }


def test_la_gets_its_digest_at_local_morning_about_its_25_hour_yesterday(la, globex):
    # 06:05 UTC is 22:05 PST in Los Angeles: only the UTC organisation (Globex) is in its morning.
    early = sent_at(datetime(2026, 11, 2, 6, 5, tzinfo=UTC))
    assert sorted(early) == ["ops@globex.test"]
    assert early["ops@globex.test"]["day"] == "2026-11-01"
    assert early["ops@globex.test"]["yesterday"]["energy_kwh"] == pytest.approx(24.0)
    # 13:05 UTC is 05:05 PST: not yet.
    assert sent_at(datetime(2026, 11, 2, 13, 5, tzinfo=UTC)) == {}
    # 14:05 UTC is 06:05 PST: Los Angeles' morning.
    morning = sent_at(datetime(2026, 11, 2, 14, 5, tzinfo=UTC))
    payload = morning["ops@acme.test"]
    assert sorted(morning) == ["ops@acme.test"]
    assert (payload["day"], payload["time_zone"]) == ("2026-11-01", "America/Los_Angeles")
    assert payload["yesterday"]["energy_kwh"] == pytest.approx(25.0)
    assert payload["yesterday"]["hours"] == 25
    # Later runs the same local day write nothing; after noon nothing is sent at all.
    assert digest.digests_send(now=datetime(2026, 11, 2, 15, 5, tzinfo=UTC)) == 0
    assert digest.digests_send(now=datetime(2026, 11, 3, 21, 5, tzinfo=UTC)) == 0
