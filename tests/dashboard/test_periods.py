"""Date ranges read from the URL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from greenkpi.lib.periods import BadPeriod, period_from_query

NOW = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)


def test_a_day_preset_is_whole_utc_days_up_to_the_end_of_today():
    period = period_from_query({"range": "7d"}, now=NOW)
    assert (period.start, period.end) == (
        datetime(2025, 3, 4, tzinfo=UTC),
        datetime(2025, 3, 11, tzinfo=UTC),
    )
    assert period.query() == {"range": "7d"}
    assert period.days == (date(2025, 3, 4), date(2025, 3, 11))
    assert period.last_day == date(2025, 3, 10)  # what the "to" date field shows: today


def test_the_24h_preset_is_whole_hours_up_to_the_end_of_this_hour():
    period = period_from_query({"range": "24h"}, now=NOW)
    assert (period.start, period.end) == (
        datetime(2025, 3, 9, 13, tzinfo=UTC),
        datetime(2025, 3, 10, 13, tzinfo=UTC),
    )
    assert period.hours == 24 and period.days is None
    assert period.last_day == date(2025, 3, 10)


def test_no_range_means_the_pages_default():
    assert period_from_query({}, default="24h", now=NOW).preset == "24h"


def test_explicit_dates_are_whole_utc_days_including_the_last():
    period = period_from_query({"from": "2025-03-01", "to": "2025-03-02"}, now=NOW)
    assert period.start == datetime(2025, 3, 1, tzinfo=UTC)
    assert period.end == datetime(2025, 3, 3, tzinfo=UTC)
    assert period.query() == {"from": "2025-03-01", "to": "2025-03-02"}
    assert period.hours == 48


def test_from_without_to_runs_until_today():
    period = period_from_query({"from": "2025-03-09"}, now=NOW)
    assert period.end == datetime(2025, 3, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "params",
    [
        {"range": "5y"},
        {"from": "March"},
        {"from": "2025-03-05", "to": "2025-03-01"},
        {"from": "2023-01-01", "to": "2025-01-01"},
    ],
)
def test_ranges_we_cannot_show_are_refused_with_a_reason(params):
    with pytest.raises(BadPeriod):
        period_from_query(params, now=NOW)


def test_the_range_form_shows_the_last_day_included_not_the_day_after(client, fleet, people):
    client.login(username="alice", password=people["password"])
    html = client.get("/?range=7d").content.decode()
    today = fleet.now.date().isoformat()
    assert f'name="to" value="{today}"' in html
