"""Recompute in batches: several hours of one organisation claimed together, rebuilt by one
statement and released together; busy, failing and taken-over windows inside a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError

from greenkpi.kpis import dirty, services
from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow


def rows_of(org, hour):
    return list(
        HourlyRollup.objects.filter(organisation=org, hour=hour).order_by(
            "device_id", "team_id", "model_key"
        )
    )


def recompute(org, hour):
    result = services.window_recompute(organisation_id=org.pk, hour=hour)
    assert result.status == "done", result
    return rows_of(org, hour)


def three_hours(secret, ingest, hour):
    hours = [hour + timedelta(hours=i) for i in range(3)]
    for h in hours:
        ingest(secret, site="paris-dc", start=h + timedelta(minutes=10))
    return hours


def test_windows_are_cut_into_batches_per_organisation_spanning_at_most_a_day():
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    hours = [t0 + timedelta(hours=h) for h in (0, 1, 5, 23, 24, 30)]
    windows = [(7, h) for h in hours] + [(3, t0 + timedelta(hours=2)), (7, hours[0])]

    assert (
        services.batches(windows)
        == [
            (7, hours[:4]),  # 00:00 .. 23:00: one day
            (3, [t0 + timedelta(hours=2)]),
            (7, hours[4:]),  # 24:00 and 30:00 start the next
        ]
    )
    assert services.batches(windows, span_hours=2) == [
        (7, hours[:2]),
        (3, [t0 + timedelta(hours=2)]),
        (7, [hours[2]]),
        (7, [hours[3], hours[4]]),
        (7, [hours[5]]),
    ]
    # minutes inside an hour name the hour's window
    assert services.batches([(1, t0 + timedelta(minutes=59))]) == [(1, [t0])]


def test_a_batch_recomputes_each_hour_as_a_lone_window_would_and_records_each_window(
    acme, acme_token, ingest, hour
):
    _, secret = acme_token
    hours = three_hours(secret, ingest, hour)
    lone = {}
    for h in hours:
        lone[h] = [(r.device_id, r.team_id, r.samples, r.energy_kwh) for r in recompute(acme, h)]
        dirty.windows_mark_dirty(organisation_id=acme.pk, window_starts=[h])

    run = services.windows_recompute(windows=[(acme.pk, h) for h in hours], kind="test")

    assert (run.status, run.windows_done, run.rows_written) == ("ok", 3, 6)
    for h in hours:
        rows = [(r.device_id, r.team_id, r.samples, r.energy_kwh) for r in rows_of(acme, h)]
        assert rows == lone[h]
        window = RollupWindow.objects.get(organisation=acme, hour=h)
        assert window.version == window.computed_version
        assert (window.rows, window.claimed_by, window.claimed_until) == (2, "", None)
    assert HourlyRollup.objects.count() == 6  # replaced, never added to


def test_a_window_held_by_another_worker_is_left_out_of_the_batch_and_the_others_land(
    acme, acme_token, ingest, hour
):
    _, secret = acme_token
    h0, h1, h2 = three_hours(secret, ingest, hour)
    RollupWindow.objects.filter(organisation=acme, hour=h1).update(
        claimed_until=h1 + timedelta(days=2), claimed_by="someone-else"
    )

    results = services.windows_batch_recompute(organisation_id=acme.pk, hours=[h0, h1, h2])

    assert {h: r.status for h, r in results.items()} == {h0: "done", h1: "busy", h2: "done"}
    assert not rows_of(acme, h1)
    assert len(rows_of(acme, h0)) == len(rows_of(acme, h2)) == 2
    held = RollupWindow.objects.get(organisation=acme, hour=h1)
    assert held.claimed_by == "someone-else" and held.version > held.computed_version


def test_one_bad_window_in_a_batch_fails_alone_and_the_others_land(
    acme, acme_token, ingest, hour, monkeypatch
):
    _, secret = acme_token
    h0, h1, h2 = three_hours(secret, ingest, hour)
    real, calls = services.rollup.windows_insert, []

    def broken_for_h1(**kwargs):
        calls.append(sorted(kwargs["hours"]))
        if h1 in kwargs["hours"]:
            raise ValueError("bad factor")
        return real(**kwargs)

    monkeypatch.setattr(services.rollup, "windows_insert", broken_for_h1)
    run = services.windows_recompute(windows=[(acme.pk, h) for h in (h0, h1, h2)], kind="test")

    # the batch failed as a whole, then went one window at a time
    assert calls == [[h0, h1, h2], [h0], [h1], [h2]]
    assert (run.status, run.windows_done, run.windows_failed) == ("partial", 2, 1)
    assert "bad factor" in run.error
    assert len(rows_of(acme, h0)) == len(rows_of(acme, h2)) == 2
    assert not rows_of(acme, h1)
    bad = RollupWindow.objects.get(organisation=acme, hour=h1)
    assert (bad.failures, bad.claimed_by) == (1, "")
    assert bad.claimed_until is not None  # pushed back
    good = RollupWindow.objects.get(organisation=acme, hour=h0)
    assert (good.failures, good.claimed_by, good.claimed_until) == (0, "", None)


def test_a_batch_whose_claim_was_taken_over_commits_nothing_and_goes_one_window_at_a_time(
    acme, acme_token, ingest, hour, monkeypatch
):
    _, secret = acme_token
    h0, h1, h2 = three_hours(secret, ingest, hour)
    real, calls = services.rollup.windows_insert, []

    def lease_lapses_meanwhile(**kwargs):
        calls.append(sorted(kwargs["hours"]))
        if len(kwargs["hours"]) > 1:  # another worker took h1 over while the batch ran
            RollupWindow.objects.filter(organisation=acme, hour=h1).update(claimed_by="thief")
        return real(**kwargs)

    monkeypatch.setattr(services.rollup, "windows_insert", lease_lapses_meanwhile)
    results = services.windows_batch_recompute(organisation_id=acme.pk, hours=[h0, h1, h2])

    assert calls == [[h0, h1, h2], [h0], [h1], [h2]]
    # the take-over was inside the rolled-back batch transaction, so each window then lands
    assert {r.status for r in results.values()} == {"done"}
    assert HourlyRollup.objects.count() == 6


def test_a_transient_error_gives_the_batch_claims_back_and_reaches_the_caller(
    acme, acme_token, ingest, hour, monkeypatch
):
    _, secret = acme_token
    hours = three_hours(secret, ingest, hour)

    def database_gone(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services.rollup, "windows_insert", database_gone)
    with pytest.raises(OperationalError):
        services.windows_recompute(windows=[(acme.pk, h) for h in hours], kind="test")

    windows = RollupWindow.objects.filter(organisation=acme, hour__in=hours)
    assert [(w.claimed_by, w.claimed_until, w.failures) for w in windows] == [("", None, 0)] * 3
    assert RecomputeRun.objects.get(kind="test").status == "failed"
    monkeypatch.undo()  # the database is back
    assert services.windows_recompute_dirty().windows_done == 3  # free for the retry
