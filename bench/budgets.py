"""Budgets page benchmark: bench/dashboard.py's data and timing, with budgets, in its own database.

    .venv/bin/python bench/budgets.py [--gpus 2000] [--teams 50] [--days 365] [--hourly-days 35]
                                      [--repeat 10] [--keep] [--budgets 10]

Reuses bench/dashboard.py (inventory, binary COPY of hourly rollups, daily rows derived by the
real refresh, the test Client timing) but in the database ``gk_bench_budgets`` (so it never drops
the dashboard bench's), creates ``--budgets`` budgets of every scope (organisation, team, model,
team model) and period (month, quarter, year) and metric, and measures only the budget and alert
pages. A year budget reads its whole period: with ``--hourly-days 35`` the hourly table holds
35 days (1.7 M rows for 2,000 GPUs) and the daily table the full year, which is enough to show what
reading hours instead of days costs. Prints ``page [user]: p50_ms p95_ms`` and ``budgets_p95_ms``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dashboard as bench  # bench/dashboard.py, imported as a sibling module

bench.DB_NAME = "gk_bench_budgets"
bench.DB_URL = bench.benchdb.url_of(bench.DB_NAME)
bench.VAR_DIR = "/tmp/gk-bench-budgets-var"

# The budgets themselves are bench/dashboard.py's (it creates ``--budgets`` of them before timing).
BUDGETS = bench.BUDGETS
create_budgets = bench.create_budgets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, default=BUDGETS)
    known, rest = parser.parse_known_args()
    rest += ["--budgets", str(known.budgets)]
    if "--hourly-days" not in " ".join(rest):
        rest += ["--hourly-days", "35"]
    if "--repeat" not in " ".join(rest):
        rest += ["--repeat", "10"]

    def pages(inv: dict, *, year_from: date, today: date) -> list[tuple[str, str]]:
        from django.urls import reverse

        return [
            (f"budgets ({known.budgets})", reverse("dashboard:budgets")),
            ("alerts", reverse("dashboard:alerts")),
        ]

    bench.pages = pages
    sys.argv = [sys.argv[0], *rest]
    bench.main()


if __name__ == "__main__":
    main()
