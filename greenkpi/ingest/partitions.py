"""Day partitions of the raw sample table on PostgreSQL (migration 0009; docs/scaling.md).

``ingest_sample`` is range-partitioned by ``window_start`` into one partition per UTC day,
``ingest_sample_pYYYYMMDD``, plus a DEFAULT partition that catches any window no day partition
holds, so an insert never fails for want of a partition (a failed creation, a direct load of old
history). Why a day: retention then works in whole days, dropping one is instant whatever its
size, a day of a 2,000-GPU fleet (2.9 M windows, ~0.5 GB) keeps each index small and hot, and
400 days of them stay well under the partition counts the planner handles comfortably; a week
would make retention coarse and each partition's indexes several GB.

Creating a day moves that day's rows out of the default partition first (normally none), inside
one transaction, then attaches the table: a CHECK constraint with the day's bounds lets ATTACH
skip scanning it. Other backends keep one table (``is_partitioned`` is False there).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction

from greenkpi.ingest.models import Sample

TABLE = Sample._meta.db_table
DEFAULT = f"{TABLE}_default"
PREFIX = f"{TABLE}_p"
# The insert-driven vacuum of migration 0004, per partition (a partitioned table has no storage
# options of its own): keeps the visibility map fresh for the chart's index-only scans.
VACUUM_OFTEN = (
    "autovacuum_vacuum_insert_threshold = 200000, autovacuum_vacuum_insert_scale_factor = 0"
)


# The parent's BRIN index on window_start (migration 0009). Its partitions' indexes summarize
# each page range as soon as the next one is written (``autosummarize``: an autovacuum work
# item), not only when VACUUM runs: a range not yet summarized matches every query, so without
# it a one-hour rollup rechecks every row written since the partition's last vacuum (up to
# VACUUM_OFTEN's 200,000; docs/scaling.md). A partitioned index's own options cannot be altered,
# so each partition's index is set (migration 0010 for those that existed).
BRIN = f"{TABLE}_window_brin"
# The partition's own index of BRIN (parameters: BRIN, the partition's name).
_BRIN_OF_PARTITION = (
    "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_index x ON x.indexrelid = c.oid "
    "WHERE i.inhparent = %s::regclass AND x.indrelid = %s::regclass"
)


def name_of(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def bounds_of(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _literal(moment: datetime) -> str:
    # DDL takes no bind parameters; the value is ours (a UTC midnight), never user input
    return f"'{moment.isoformat()}'::timestamptz"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE relname = %s", [TABLE])
        row = cur.fetchone()
    return bool(row and row[0] == "p")


def day_partitions() -> dict[date, str]:
    """The attached day partitions, by day."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        names = [row[0] for row in cur.fetchall()]
    days = {}
    for name in names:
        if name.startswith(PREFIX):
            days[date.fromisoformat(name.removeprefix(PREFIX))] = name
    return days


# Day partitions are made at most this far back: a late-data limit of years (a benchmark's) would
# otherwise mean thousands of partitions; older late windows land in the default partition.
BACK_MAX_DAYS = 92


def late_range(now: datetime, max_age_days: float, ahead_days: int) -> list[date]:
    """The days whose partitions should exist: the late-data range (capped) and the days ahead."""
    back = min(max_age_days, BACK_MAX_DAYS)
    return days_between(now - timedelta(days=back), now + timedelta(days=ahead_days))


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days that [start, end] touches."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def partitions_ensure(days: Iterable[date]) -> list[str]:
    """Create the missing day partitions among ``days``; returns the names created.

    Each day in its own transaction: its rows (if any) move out of the default partition, the
    table is attached, and the day's CHECK constraint (which spared ATTACH a scan) is dropped.
    """
    existing = day_partitions()
    created = []
    for day in sorted(set(days)):
        if day in existing:
            continue
        name = name_of(day)
        start, end = (_literal(b) for b in bounds_of(day))
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS) WITH ({VACUUM_OFTEN})"
            )
            cur.execute(
                f"ALTER TABLE {name} ADD CONSTRAINT {name}_day "
                f"CHECK (window_start >= {start} AND window_start < {end})"
            )
            cur.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT} WHERE window_start >= {start} "
                f"AND window_start < {end} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            )
            cur.execute(
                f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
            )
            cur.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_day")
            cur.execute(_BRIN_OF_PARTITION, [BRIN, name])
            for (index,) in cur.fetchall():
                cur.execute(f"ALTER INDEX {index} SET (autosummarize = on)")
        created.append(name)
    return created


def partition_drop(day: date) -> None:
    """Drop one day's partition: instant, whatever its size (the caller checked its rollups)."""
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name_of(day)}")


def partition_bytes(day: date) -> int:
    """The day partition's size on disk, indexes and TOAST included."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_total_relation_size(%s::regclass)", [name_of(day)])
        return int(cur.fetchone()[0])


def samples_delete(*, start: datetime, end: datetime) -> int:
    """Delete the raw windows starting in [start, end) (SQLite, or strays in the default
    partition); returns how many."""
    return Sample.objects.filter(window_start__gte=start, window_start__lt=end).delete()[0]
