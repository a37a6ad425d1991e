"""The organisation's devices as a condition of the PostgreSQL sums (kpis.rollup_pg._devices_sql):
ranges of consecutive ids when they are few, the hashed array otherwise."""

from __future__ import annotations

from greenkpi.kpis.rollup_pg import _MAX_DEVICE_RUNS, _devices_sql

ANY = "s.device_id = ANY(%(devices)s::bigint[])"


def test_consecutive_ids_are_one_range():
    assert _devices_sql([3, 4, 5, 6]) == "(s.device_id BETWEEN 3 AND 6)"


def test_gaps_make_ranges_and_a_lone_id_is_its_own():
    assert _devices_sql([1, 2, 5, 9, 10]) == (
        "(s.device_id BETWEEN 1 AND 2 OR s.device_id BETWEEN 5 AND 5"
        " OR s.device_id BETWEEN 9 AND 10)"
    )


def test_too_many_runs_or_none_use_the_array():
    scattered = list(range(1, 4 * (_MAX_DEVICE_RUNS + 1), 4))  # every fourth id
    assert _devices_sql(scattered[:_MAX_DEVICE_RUNS]).count("BETWEEN") == _MAX_DEVICE_RUNS
    assert _devices_sql(scattered) == ANY
    assert _devices_sql([]) == ANY
