"""Time buckets as plain numbers, and rows fetched without Django's per-value converters.

A year of team-days is ~18 k rows: psycopg parsing each date cost ~40 % of fetching them and
Django's converters ~30 ms more (bench/dashboard.py); integers and floats cost nothing and pandas
turns them into times in one step. Written once per backend we support (PostgreSQL, SQLite).
"""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError, connections
from django.db.models import DateField, FloatField, Func, IntegerField, QuerySet


class EpochDays(Func):
    """Days since 1970-01-01 of a date expression, as an integer."""

    arity = 1
    output_field = IntegerField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"EpochDays is not written for {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler, connection, template="(%(expressions)s - DATE '1970-01-01')", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler,
            connection,
            template="CAST(ROUND(julianday(%(expressions)s) - 2440587.5) AS INTEGER)",
            **extra,
        )


class EpochSeconds(Func):
    """Seconds since 1970-01-01 UTC of a datetime column, as a float.

    Hour buckets of the read layer and chart buckets of raw windows (fleet charts ask the
    database for ~8 k buckets per device whatever the range) are both computed from it. The one
    copy: both backends agree to the millisecond, and whole seconds are exact integers.
    """

    arity = 1
    output_field = FloatField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"EpochSeconds is not written for {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # date_part returns a double; EXTRACT returns numeric since PostgreSQL 14 (slower).
        return super().as_sql(
            compiler, connection, template="date_part('epoch', %(expressions)s)", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # julianday() reads Django's stored UTC text; 2440587.5 is the Julian day of the epoch.
        # SQLite keeps a Julian day as whole milliseconds, so its float carries noise below that
        # (12:00:00.25 came back as ...000.2500086): rounded to the millisecond, whole seconds
        # are exact (hour buckets compare equal) and a sub-second window start keeps its
        # milliseconds (rounding to the second moved 12:00:59.75 into the next minute's bucket).
        # PostgreSQL's date_part keeps microseconds: the two agree to the millisecond.
        return super().as_sql(
            compiler,
            connection,
            template="(ROUND((julianday(%(expressions)s) - 2440587.5) * 86400000.0) / 1000.0)",
            **extra,
        )


def fetch_rows(queryset: QuerySet) -> list[tuple[Any, ...]]:
    """The rows of a ``values_list`` queryset straight from the cursor (no converters). Use only
    where every column is a number or text."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class LocalDay(Func):
    """The organisation's local day an hourly row belongs to: the date, in the zone named by the
    second expression (a column such as ``organisation__time_zone`` or a Value), on which the UTC
    hour of the first expression ends. For whole-hour offsets that is the local date of the hour's
    start; where local midnight falls inside a UTC hour (+5:30, +5:45) the hour belongs to the day
    that begins in it: lib.periods.day_of, the one rule, in SQL."""

    arity = 2
    output_field = DateField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"LocalDay is not written for {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        hour, hour_params = compiler.compile(self.source_expressions[0])
        zone, zone_params = compiler.compile(self.source_expressions[1])
        sql = f"(({hour} + interval '3599 seconds') AT TIME ZONE {zone})::date"
        return sql, (*hour_params, *zone_params)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django's own SQLite function for TruncDate(tzinfo=...): zoneinfo in Python, so DST and
        # odd offsets follow the same tz database as lib.periods.
        hour, hour_params = compiler.compile(self.source_expressions[0])
        zone, zone_params = compiler.compile(self.source_expressions[1])
        sql = f"django_datetime_cast_date(datetime({hour}, '+3599 seconds'), {zone}, 'UTC')"
        return sql, (*hour_params, *zone_params)
