"""The daily part of a read, kept in memory until a refresh of its days changes it.

Whole fresh days come from the daily tables (``sums.plan``), which only ``kpis.daily`` writes: a
refresh replaces a day's rows and stamps its DailyWindow with a new ``refreshed_at`` in the same
transaction; a zone change deletes both in one transaction. So the rows of a daily part are fixed
by its query (table, days, skipped stale days, keys, filters, columns) and the days' refresh
records: ``version`` is their count and newest stamp, read by the freshness query every read runs
anyway (``freshness.DayStates``). A key made of the SQL, its parameters and that version answers
with the rows the query would return; a refresh of any day in the range makes a new key. Nothing
is ever invalidated, nor needs to be: entries of old versions are never asked for again and leave
by age or by the size bound.

Why in each process's memory (``CACHES["read"]``, a LocMemCache): the key is checked against the
database on every read, so a process never answers from another's state, and a cache shared
across test runs or deployments (Redis) could meet a key of a database that no longer exists.
The hourly part (partial and stale days, the hour grain, hourly keys) is never cached: it moves
with every rollup.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db.models import QuerySet

ALIAS = "read"
Rows = list[tuple[Any, ...]]


def enabled() -> bool:
    return settings.READ_CACHE_MAX_ROWS > 0


def key_of(query: QuerySet, version: str) -> str:
    sql, params = query.query.sql_with_params()
    digest = hashlib.sha256(repr((query.db, sql, params, version)).encode()).hexdigest()
    return f"kpis.read:{digest}"


def get(key: str) -> Rows | None:
    """The rows kept under ``key`` (``key_of``), or None."""
    return caches[ALIAS].get(key)


def put(key: str, rows: Rows) -> None:
    """Keep ``rows``, unless more than READ_CACHE_MAX_ROWS (a bound on each process's memory)."""
    if len(rows) <= settings.READ_CACHE_MAX_ROWS:
        caches[ALIAS].set(key, rows)
