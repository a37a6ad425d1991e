"""Issue 14 item 7: a device's windows never count twice, and hour-straddling windows are split.

Hand-worked: a 60 s window from 10:59:15 to 11:00:15 with 12,000 J lies 45 s in hour 10 and 15 s
in hour 11, so 9,000 J and 3,000 J; its shares of 8,000 J and 4,000 J split the same way (6,000 /
2,000 and 2,000 / 1,000 J). The rollups of the two hours get 9,000 J = 0.0025 kWh and 3,000 J =
0.000833... kWh.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum

from greenkpi.ingest import windows
from greenkpi.ingest.models import Sample, SampleShare
from greenkpi.kpis import services
from greenkpi.kpis.models import HourlyRollup


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def ten() -> datetime:
    """10:00 UTC of a recent day (old enough to be complete, young enough to ingest)."""
    day = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    return day - timedelta(days=1)


def one_window(make_batch, start: datetime, seconds: int = 60, **kwargs) -> dict:
    body = make_batch(devices=1, windows=1, start=start, window_s=seconds, **kwargs)
    return body


def test_an_exact_replay_under_a_new_key_is_a_no_op(acme_token, make_batch, post_batch, ten):
    _, secret = acme_token
    body = make_batch(devices=2, windows=3, start=ten)
    assert post_batch(secret, body, "first").json()["accepted"] == 6
    again = post_batch(secret, body, "second")
    assert again.status_code == 201
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 6)
    assert Sample.objects.count() == 6


def test_an_overlapping_window_is_refused_naming_the_sample_and_the_stored_window(
    acme_token, make_batch, post_batch, ten
):
    _, secret = acme_token
    assert post_batch(secret, one_window(make_batch, ten)).status_code == 201
    shifted = one_window(make_batch, ten + timedelta(seconds=30))  # 10:00:30-10:01:30
    response = post_batch(secret, shifted)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert error["pointer"] == "/samples/0/start"
    assert error["code"] == "overlapping_window"
    assert error["sample_index"] == 0
    assert z(ten + timedelta(seconds=30)) in error["detail"]  # which sample
    assert f"{z(ten)}/{z(ten + timedelta(seconds=60))}" in error["detail"]  # which stored window
    assert "GPU-gpu-node-1-0" in error["detail"]
    assert Sample.objects.count() == 1


def test_a_window_with_the_same_start_and_another_end_is_an_overlap(
    acme_token, make_batch, post_batch, ten
):
    _, secret = acme_token
    post_batch(secret, one_window(make_batch, ten))
    longer = one_window(make_batch, ten, seconds=90)
    response = post_batch(secret, longer)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "overlapping_window"


def test_overlapping_windows_inside_one_batch_are_refused(acme_token, make_batch, post_batch, ten):
    _, secret = acme_token
    body = make_batch(devices=1, windows=2, start=ten)
    body["samples"][1]["start"] = z(ten + timedelta(seconds=30))
    body["samples"][1]["end"] = z(ten + timedelta(seconds=90))
    response = post_batch(secret, body)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["sample_index"] == 1 and error["code"] == "overlapping_window"
    assert not Sample.objects.exists()


def test_adjacent_windows_and_other_devices_are_not_overlaps(
    acme_token, make_batch, post_batch, ten
):
    _, secret = acme_token
    post_batch(secret, make_batch(devices=2, windows=2, start=ten))
    later = make_batch(devices=2, windows=2, start=ten + timedelta(seconds=120))
    assert post_batch(secret, later).status_code == 201
    assert Sample.objects.count() == 8


def test_a_window_straddling_an_hour_is_split_in_proportion_to_time(
    acme, acme_token, make_batch, post_batch, ten
):
    _, secret = acme_token
    start = ten + timedelta(minutes=59, seconds=15)
    shares = [
        {"energy_j": 8000.0, "method": "utilization", "team": "nlp", "run": "r1"},
        {"energy_j": 4000.0, "method": "unattributed"},
    ]
    body = one_window(make_batch, start, shares=shares)
    response = post_batch(secret, body)
    assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 0)
    rows = list(
        Sample.objects.order_by("window_start").values_list(
            "window_start", "window_end", "energy_j", "idle_s"
        )
    )
    eleven = ten + timedelta(hours=1)
    assert rows == [
        (start, eleven, 9000.0, 3.75),  # idle 5 s x 45/60
        (eleven, start + timedelta(seconds=60), 3000.0, 1.25),
    ]
    parts = sorted(SampleShare.objects.values_list("window_start", "position", "energy_j"))
    assert parts == [
        (start, 0, 6000.0),
        (start, 1, 3000.0),
        (eleven, 0, 2000.0),
        (eleven, 1, 1000.0),
    ]

    # a replay of the straddling window is still a duplicate
    again = post_batch(secret, body)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)

    # both hours were marked dirty, and each hour's rollup has its part
    services.windows_recompute_dirty()
    by_hour = dict(
        HourlyRollup.objects.filter(organisation=acme)
        .values_list("hour")
        .annotate(e=Sum("energy_kwh"))
    )
    assert by_hour == {ten: pytest.approx(9000 / 3.6e6), eleven: pytest.approx(3000 / 3.6e6)}
    nlp = HourlyRollup.objects.filter(team=acme.nlp).values_list("hour", "energy_kwh")
    assert dict(nlp) == {ten: pytest.approx(6000 / 3.6e6), eleven: pytest.approx(2000 / 3.6e6)}


def test_a_window_ending_on_the_hour_is_one_row_and_a_batch_keeps_its_order_when_one_is_cut(
    make_batch, post_batch, acme_token, ten
):
    _, secret = acme_token
    # 90 s windows from 9:57:00: the second ends at 10:00:00 sharp, so nothing is cut
    on_the_hour = make_batch(devices=1, windows=3, start=ten - timedelta(minutes=3), window_s=90)
    response = post_batch(secret, on_the_hour)
    assert (response.json()["accepted"], response.json()["duplicates"]) == (3, 0)
    starts = [ten - timedelta(minutes=3), ten - timedelta(seconds=90), ten]
    assert list(Sample.objects.order_by("window_start").values_list("window_start", flat=True)) == (
        starts
    )

    # 60 s windows from 11:58:30: the second, 11:59:30 to 12:00:30, is cut in two at noon
    eleven = ten + timedelta(hours=1)
    cut = make_batch(devices=1, windows=2, start=eleven + timedelta(minutes=58, seconds=30))
    response = post_batch(secret, cut)
    assert (response.json()["accepted"], response.json()["duplicates"]) == (2, 0)
    later = Sample.objects.filter(window_start__gt=eleven).order_by("window_start")
    assert list(later.values_list("window_start", "window_end")) == [
        (eleven + timedelta(minutes=58, seconds=30), eleven + timedelta(minutes=59, seconds=30)),
        (eleven + timedelta(minutes=59, seconds=30), eleven + timedelta(hours=1)),
        (eleven + timedelta(hours=1), eleven + timedelta(hours=1, seconds=30)),
    ]


def test_hour_pieces_sum_exactly_to_what_was_sent():
    start = datetime(2026, 1, 1, 9, 20, 0, 123456, tzinfo=UTC)
    row = (1, start, start + timedelta(minutes=59), 0.1 + 0.2 + 1e6, "counter",
           None, None, None, None, None, None, None, None, 7,
           [{"e": 1e6 / 3, "k": "equal"}, {"e": 2e6 / 3 + 0.3, "k": "equal"}])  # fmt: skip
    pieces = windows.hour_pieces(row)
    assert [(p[1], p[2]) for p in pieces] == [
        (start, datetime(2026, 1, 1, 10, tzinfo=UTC)),
        (datetime(2026, 1, 1, 10, tzinfo=UTC), start + timedelta(minutes=59)),
    ]
    assert pieces[0][3] + pieces[1][3] == row[3]
    for i in (0, 1):
        assert pieces[0][14][i]["e"] + pieces[1][14][i]["e"] == row[14][i]["e"]
    assert pieces[0][12] is None  # unknown idle stays unknown
    inside = (1, start, start + timedelta(minutes=10), 5.0) + (None,) * 10 + (None,)
    assert windows.hour_pieces(inside) == [inside]


def test_overlaps_finds_each_kind_once():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    m = timedelta(minutes=1)
    stored = [(1, t, t + m), (2, t, t + m)]
    rows = [
        (1, t, t + m),  # exact replay
        (1, t + m, t + 2 * m),  # adjacent: fine
        (2, t - m / 2, t + m / 2),  # starts before a stored window and reaches into it
        (3, t, t + m),  # another device
    ]
    found, replays = windows.overlaps(rows, stored)
    assert replays == {(1, t)}
    assert found == [(2, (2, t, t + m))]


def test_a_correction_deletes_the_stored_window_then_the_new_one_is_accepted(
    acme, acme_token, make_batch, post_batch, ten
):
    from io import StringIO

    from django.core.management import call_command

    from greenkpi.kpis.models import RollupWindow

    _, secret = acme_token
    post_batch(secret, one_window(make_batch, ten))
    services.windows_recompute_dirty()
    correction = one_window(make_batch, ten, seconds=90, energy_j=15_000.0)
    assert post_batch(secret, correction).status_code == 400  # the collector dead-letters it
    out = StringIO()
    call_command(
        "delete_windows", org="acme", device="GPU-gpu-node-1-0", start=z(ten),
        end=z(ten + timedelta(seconds=90)), stdout=out,
    )  # fmt: skip
    assert "deleted 1 window(s)" in out.getvalue()
    window = RollupWindow.objects.get(organisation=acme, hour=ten)
    assert window.version > window.computed_version  # its hour is recomputed
    assert post_batch(secret, correction).status_code == 201  # spool --requeue-dead
    assert list(Sample.objects.values_list("energy_j", flat=True)) == [15_000.0]


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_no_samples_is_stored_as_nothing_not_a_500(acme_token, make_batch, post_batch):
    """A heartbeat batch (samples: []) has no window to compare: found by Schemathesis as a
    ValueError (min() of nothing) in the overlap check, a 500."""
    _, secret = acme_token
    body = make_batch(devices=1, windows=1)
    body["samples"] = []
    response = post_batch(secret, body)
    assert response.status_code == 201, response.content
    assert response.json()["accepted"] == 0
