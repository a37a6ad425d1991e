"""Issue 17 finding 7: what a restart leaves exact (counter-based devices) and what it does not
(estimates and power integrals), and that docs/collector.md says so rather than "no gaps"."""

from __future__ import annotations

from pathlib import Path

from greenkpi_collector.sources.base import Reading
from greenkpi_collector.windows import Cursor, resume

DOC = Path(__file__).resolve().parents[2] / "docs" / "collector.md"


def test_a_counter_device_resumes_at_its_cursor_but_an_estimate_starts_after_the_gap() -> None:
    cursor = Cursor(t_wall=100.0, counter=5_000, unit_j=1.0, range_units=None)
    counted = resume(
        Reading("cpu-0", "cpu", "counter", counter=5_600, counter_unit_j=1.0), cursor, 120.4, 600
    )
    assert (counted.start_wall, counted.energy_j) == (100.0, 600.0)  # the 20.4 s are measured
    no_counter = Cursor(t_wall=100.0, counter=None, unit_j=1.0, range_units=None)
    for method in ("estimate", "power_integral"):
        estimated = resume(Reading("cpu-0", "cpu", method, power_w=50.0), no_counter, 120.4, 600)
        assert (estimated.start_wall, estimated.energy_j) == (120.4, 0)  # a 20.4 s gap


def test_the_docs_say_which_devices_keep_restarts_gap_free() -> None:
    text = " ".join(DOC.read_text().split())
    assert "Restarts do not leave gaps" not in text
    assert "This holds only for counter-based devices" in text
    assert "estimates** (no readable RAPL)" in text or "**estimates** (no readable RAPL)" in text
