"""Budget periods (calendar month, quarter, year in UTC) as small pure helpers; no Django."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

HOUR = timedelta(hours=1)


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def _months(kind: str) -> int:
    try:
        return {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[PeriodKind(kind)]
    except ValueError:
        raise ValueError(f"unknown period {kind!r}") from None


def period_bounds(kind: str, moment: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar period of ``kind`` that contains ``moment``, in UTC."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    moment = moment.astimezone(UTC)
    months = _months(kind)
    first_month = (moment.month - 1) // months * months + 1
    start = datetime(moment.year, first_month, 1, tzinfo=UTC)
    end_index = first_month - 1 + months  # months since January of start's year
    end = datetime(moment.year + end_index // 12, end_index % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_label(kind: str, start: datetime) -> str:
    """ "2026-05", "2026-Q2" or "2026" for the period starting at ``start``."""
    if PeriodKind(kind) is PeriodKind.MONTH:
        return f"{start:%Y-%m}"
    if PeriodKind(kind) is PeriodKind.QUARTER:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year}"


def hour_floor(moment: datetime) -> datetime:
    """The start of the UTC hour containing ``moment`` (aware)."""
    return datetime.fromtimestamp(int(moment.timestamp()) // 3600 * 3600, UTC)
