"""The ledger where people read it: the overview's "saved this quarter", the ESG report's list,
the Recommendations card; and the daily digest announcing new high-value findings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from recommendations.test_recompute import NOW, pool_rows, pool_rows_after

from greenkpi.alerts.digest import Recipient, digest_payload
from greenkpi.recommendations import services
from greenkpi.recommendations.models import Finding, State

pytestmark = pytest.mark.django_db
DECIDED = NOW - timedelta(days=7)


@pytest.fixture
def booked(acme, people):
    pool_rows(acme, gpus=4, days=21, end=DECIDED + timedelta(days=1))
    pool_rows_after(acme, start=DECIDED + timedelta(days=1), end=NOW)
    services.recompute(organisation=acme, now=DECIDED)
    pool = Finding.objects.get(detector="idle-allocation")
    services.decide(finding=pool, state=State.ACCEPTED, reason="shrink", user=None, now=DECIDED)
    services.recompute(organisation=acme, now=NOW)
    return pool


def test_overview_report_and_card_show_the_measured_saving(client, people, booked):
    client.force_login(people["alice"])
    overview = client.get("/?from=2026-03-01&to=2026-03-28").content.decode()
    line = overview.split('data-testid="saved-quarter"')[1].split("</p>")[0]
    # 28.8 kWh saved x 0.065 kg = 1.872 kg, one recommendation acted on
    assert "1.87 kg CO2e" in line and "1 recommendation acted on" in line and "28.8 kWh" in line
    report = client.get("/reports/?month=2026-03").content.decode()
    ledger = report.split('data-testid="savings-ledger"')[1].split("</table>")[0]
    assert (
        "GPUs held fell to 2" in ledger
        and "28.8 ± 0" in ledger
        and "Use Energy-Aware Scheduling" in ledger
    )
    assert (
        "No change from an accepted recommendation"
        in client.get("/reports/?month=2026-02").content.decode()
    )
    card = client.get("/recommendations/").content.decode()
    assert 'data-testid="card-realised"' in card and "Measured since the change" in card
    listed = client.get("/api/v1/recommendations/?state=accepted").json()
    assert listed[0]["realised"]["saved_kwh"] == pytest.approx(28.8)
    # Another team's viewer sees none of it.
    client.force_login(people["nina"])
    other = client.get("/?from=2026-03-01&to=2026-03-28").content.decode()
    assert "0 recommendations acted on" in other.split('data-testid="saved-quarter"')[1]


def test_the_digest_announces_new_high_value_findings_of_the_recipients_teams(acme, booked):
    everyone = Recipient("ops@example.com", None, org_wide=True)  # type: ignore[arg-type]
    payload = digest_payload(organisation=acme, recipient=everyone, day=DECIDED.date(), now=NOW)
    new = payload["recommendations"]["new"]
    # Both were first seen on the decision day; the pool is accepted since: only the open
    # right-size card (its H100s 4 % busy) is announced.
    assert [r["tactic"] for r in new] == ["Use Energy-Efficient Hardware"]
    assert payload["recommendations"]["url"].endswith("/recommendations/?org=acme")
    nlp = Recipient("nina@example.com", None, team_ids={acme.nlp.pk})  # type: ignore[arg-type]
    assert (
        digest_payload(organisation=acme, recipient=nlp, day=DECIDED.date(), now=NOW)[
            "recommendations"
        ]["new"]
        == []
    )
    later = digest_payload(organisation=acme, recipient=everyone, day=NOW.date(), now=NOW)
    assert later["recommendations"]["new"] == []  # not new any more
