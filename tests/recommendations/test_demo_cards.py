"""The demo tells the recommendations story (issue 18, "Done means"): the idle notebook pool, a
right-size case, the ranker's no-gain nightly retrain and a shift-in-time case as cards with
plausible savings, and the pool's accepted card with a realised saving booked after the simulator
shrank the pool. Built with four days of history, like tests/demo."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from greenkpi.demo import build
from greenkpi.recommendations.models import Finding, RealisedSaving, State

NOW = datetime(2026, 11, 17, 12, 20, tzinfo=UTC)  # tests/demo's Tuesday


@pytest.fixture
def demo(db):
    return build.demo_build(days=4, now=NOW)


def test_the_demo_cards_and_the_booked_saving(demo):
    cards = {
        (f.detector, f.owner): f
        for f in Finding.objects.filter(organisation=demo.organisation, present=True)
    }
    pool = cards["idle-allocation", "platform/notebook-pool"]
    assert pool.state == State.ACCEPTED and pool.tactic == "Use Energy-Aware Scheduling"
    # Four H100s mostly idle: thousands of kWh a year, not tens, not millions.
    assert 1_000 < pool.annual_kwh < 10_000
    right_size = cards["right-size", "nlp/summarizer-t5"]
    assert right_size.evidence["gpu_family"] == "A100" and right_size.evidence["target"] == "L4"
    assert 300 < right_size.annual_kwh < 5_000
    shift = cards["shift", "recsys/two-tower-ranker"]
    assert shift.subject == "nightly-retrain" and shift.annual_location_kgco2e > 50
    assert shift.annual_kwh == 0 and shift.annual_market_kgco2e is None
    # No idle-allocation card for services answering requests, no right-size for a host's idle
    # time between runs (no model key).
    assert not any(d == "idle-allocation" and o != "platform/notebook-pool" for d, o in cards)
    assert all("/" in o for d, o in cards if d == "right-size")
    saving = RealisedSaving.objects.get(finding=pool)
    assert "fell to 2" in saving.change
    # The two GPUs left carry the same notebook work: what the four would have drawn for it
    # (counterfactual) is well above what the two drew.
    assert saving.counterfactual_kwh > saving.actual_kwh > 0
    assert saving.saved_kwh == pytest.approx(saving.counterfactual_kwh - saving.actual_kwh)
    assert saving.saved_location_kgco2e > 0 and saving.uncertainty_kwh > 0
