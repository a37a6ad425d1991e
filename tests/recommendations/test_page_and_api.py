"""The Recommendations page and /api/v1/recommendations/: scoped like every page, decisions by
managers of the owning team with a reason, problem+json errors naming the field."""

from __future__ import annotations

import pytest
from recommendations.test_recompute import NOW, pool_rows

from greenkpi.recommendations import services
from greenkpi.recommendations.models import Decision, Finding, State

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(acme, people):
    pool_rows(acme, gpus=4, days=28, end=NOW)
    services.recompute(organisation=acme, now=NOW)
    return Finding.objects.get(detector="idle-allocation")


def test_the_page_ranks_cards_with_their_tactic_and_figures(client, people, pool):
    client.force_login(people["alice"])
    page = client.get("/recommendations/").content.decode()
    assert 'aria-current="page">Recommendations</a>' in page
    cards = page.split('data-testid="card"')[1:]
    # Idle pool (3,366 kWh a year) before the right-size card of the same GPUs.
    assert (
        'data-detector="idle-allocation"' in cards[0] and "Use Energy-Aware Scheduling" in cards[0]
    )
    assert 'data-detector="right-size"' in cards[1] and "Use Energy-Efficient Hardware" in cards[1]
    assert "3,366 kWh" in cards[0]  # 3,366.14: integer digits are never dropped
    assert "Scope 2 location-based" in cards[0] and "Scope 2 market-based" in cards[0]
    assert 'data-testid="accept"' in cards[0]  # an org admin decides


def test_a_viewer_sees_the_card_but_cannot_decide_and_another_team_does_not_see_it(
    client, people, pool
):
    client.force_login(people["victor"])  # vision viewer
    page = client.get("/recommendations/").content.decode()
    assert pool.title in page and 'data-testid="accept"' not in page
    answer = client.post(
        f"/api/v1/recommendations/{pool.pk}/decision/",
        {"state": "accepted", "reason": "x"},
        content_type="application/json",
    )
    assert answer.status_code == 403
    assert answer["Content-Type"] == "application/problem+json"
    client.force_login(people["nina"])  # nlp manager: not her team
    assert pool.title not in client.get("/recommendations/").content.decode()
    answer = client.post(
        f"/api/v1/recommendations/{pool.pk}/decision/",
        {"state": "accepted", "reason": "x"},
        content_type="application/json",
    )
    assert answer.status_code == 404
    assert (
        client.post(f"/recommendations/{pool.pk}/decide/", {"state": "accepted"}).status_code == 404
    )
    assert client.get("/api/v1/recommendations/").json() == []


def test_the_api_lists_and_decides_with_problems_naming_the_field(client, people, pool, acme_token):
    client.force_login(people["alice"])
    listed = client.get("/api/v1/recommendations/?org=acme").json()
    assert [f["detector"] for f in listed] == ["idle-allocation", "right-size"]
    first = listed[0]
    assert first["tactic"] == "Use Energy-Aware Scheduling" and first["can_decide"] is True
    assert first["estimated_annual_kwh"] == pytest.approx(4 * 672 * 0.1 * 0.96 * 8766 / 672)
    assert first["realised"] is None
    url = f"/api/v1/recommendations/{pool.pk}/decision/"
    missing = client.post(url, {"state": "dismissed"}, content_type="application/json")
    assert missing.status_code == 400 and "reason" in str(missing.json())
    bad = client.post(url, {"state": "maybe", "reason": "x"}, content_type="application/json")
    assert bad.status_code == 400 and "state" in str(bad.json())
    snooze = client.post(url, {"state": "snoozed", "reason": "q1"}, content_type="application/json")
    assert snooze.status_code == 400 and "snoozed_until" in str(snooze.json())
    done = client.post(
        url, {"state": "accepted", "reason": "culler from Monday"}, content_type="application/json"
    )
    assert done.status_code == 200 and done.json()["state"] == "accepted"
    assert Decision.objects.get(finding=pool).user == people["alice"]
    assert client.get("/api/v1/recommendations/?state=nope").status_code == 400
    assert [f["state"] for f in client.get("/api/v1/recommendations/?state=accepted").json()] == [
        "accepted"
    ]
    assert (
        client.post(
            "/api/v1/recommendations/999999/decision/", {}, content_type="application/json"
        ).status_code
        == 404
    )
    client.logout()
    token = {"HTTP_AUTHORIZATION": f"Bearer {acme_token[1]}"}
    assert client.get("/api/v1/recommendations/", **token).status_code == 403


def test_the_page_form_decides_and_parks_a_dismissed_card(client, people, pool):
    client.force_login(people["alice"])
    refused = client.post(
        f"/recommendations/{pool.pk}/decide/", {"org": "acme", "state": "dismissed", "reason": ""}
    )
    assert refused.status_code == 400 and b"reason" in refused.content
    client.post(
        f"/recommendations/{pool.pk}/decide/",
        {"org": "acme", "state": "dismissed", "reason": "teaching lab needs them"},
    )
    pool.refresh_from_db()
    assert pool.state == State.DISMISSED and pool.decided_by == people["alice"]
    page = client.get("/recommendations/").content.decode()
    parked = page.split('data-testid="parked"')[1]
    assert "teaching lab needs them" in parked


def test_the_schema_documents_both_operations_and_their_problems(client):
    schema = client.get("/api/schema/?format=json").json()
    listing = schema["paths"]["/api/v1/recommendations/"]["get"]
    decide = schema["paths"]["/api/v1/recommendations/{finding_id}/decision/"]["post"]
    assert listing["operationId"] == "recommendations_list"
    assert {"400", "401", "403", "404"} <= set(decide["responses"])
    assert "application/problem+json" in decide["responses"]["403"]["content"]
