"""Database functions the ORM lacks, written once per backend we support (PostgreSQL, SQLite)."""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError
from django.db.models import FloatField, Func


class EpochSeconds(Func):
    """Seconds since 1970-01-01 UTC of a datetime column, as a float.

    Bucketing by epoch in the database lets a chart ask for ~8k rows per device however long the
    range, instead of pulling every window into Python (reference/performance-limits.md, section 7).
    """

    arity = 1
    output_field = FloatField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"EpochSeconds is not written for {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # date_part returns a double; EXTRACT returns numeric since PostgreSQL 14, several times
        # slower to compute and divide (bench/dashboard.py: the week's host chart).
        return super().as_sql(
            compiler, connection, template="date_part('epoch', %(expressions)s)", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # julianday() reads Django's stored UTC text; 2440587.5 is the Julian day of the Unix epoch.
        return super().as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra,
        )
