"""The names of the carbon quantities, written once (glossary: docs/kpis.md, "Vocabulary").

Every tile, chart axis, table column, CSV header, email and API description that shows one of
these quantities takes its name from here, so "Scope 2 location-based" on the overview, the
carbon page, the ESG report and a budget is the same quantity with the same value. Pure: no Django.

- Scope 2 location-based: operational CO2e, facility energy (IT x PUE) x the grid's average
  direct (combustion) intensity where and when it was used, lifecycle where only that exists
  (each row says which: ``intensity_method``; rollup column ``operational_location_kgco2e``).
- Scope 2 market-based: operational CO2e with the site's contractual instruments (PPA,
  certificates, supplier factor) for the share they cover, the residual mix for the rest, else
  the grid average, labelled (``operational_market_kgco2e``).
- Scope 3 cat. 3: the upstream part of the electricity's lifecycle intensity plus T&D losses,
  beside Scope 2 (``upstream_kgco2e``).
- embodied (Scope 3 cat. 2): the devices' and their whole hosts' manufacturing footprint
  amortised over their lifetime for the time used, SCI's M (``embodied_kgco2e``).
- total (SCI numerator): Scope 2 location-based + embodied, SCI's O + M (``total_kgco2e``; the
  ``co2e`` KPI, the "total" budgets, the model and run figures). Scope 3 cat. 3 is reported
  beside it, not in it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    """A carbon quantity: its one name, the rollup/frame column that holds it in kg, and what it is."""

    key: str
    name: str
    column: str
    definition: str

    @property
    def title(self) -> str:
        """The name at the start of a heading: "Embodied (Scope 3)"."""
        return self.name[:1].upper() + self.name[1:]

    @property
    def tile(self) -> str:
        """A tile or fact label: "CO2e, Scope 2 location-based"."""
        return f"CO2e, {self.name}"

    @property
    def csv_header(self) -> str:
        """A CSV header or table column with its unit: "Scope 2 location-based (kgCO2e)"."""
        return f"{self.title} (kgCO2e)"


SCOPE2_LOCATION = Quantity(
    "location",
    "Scope 2 location-based",
    "operational_location_kgco2e",
    "facility energy (IT x PUE) x the grid's average intensity where and when it was used",
)
SCOPE2_MARKET = Quantity(
    "market",
    "Scope 2 market-based",
    "operational_market_kgco2e",
    "facility energy x the site's contractual instruments for the share they cover, the residual "
    "mix for the rest (else the grid average, labelled)",
)
SCOPE3_UPSTREAM = Quantity(
    "upstream",
    "Scope 3 cat. 3 (upstream and T&D losses)",
    "upstream_kgco2e",
    "facility energy x (the lifecycle intensity's upstream part + T&D losses x lifecycle intensity)",
)
EMBODIED = Quantity(
    "embodied",
    "embodied (Scope 3 cat. 2)",
    "embodied_kgco2e",
    "the devices' and their hosts' manufacturing footprint amortised over their lifetime for the "
    "time used (SCI's M)",
)
TOTAL = Quantity(
    "total",
    "total (SCI numerator)",
    "total_kgco2e",
    "Scope 2 location-based + embodied (Scope 3): SCI's O + M",
)
QUANTITIES = (SCOPE2_LOCATION, SCOPE2_MARKET, SCOPE3_UPSTREAM, EMBODIED, TOTAL)
BY_COLUMN = {q.column: q for q in QUANTITIES}
# Frames that hold the total under another name (model and run figures, budgets' co2e_kg).
BY_COLUMN["kgco2e"] = TOTAL
BY_COLUMN["co2e_kg"] = TOTAL
# What a CSV download calls these columns: the names people read on the pages, with the unit.
CSV_HEADERS = {column: q.csv_header for column, q in BY_COLUMN.items()}


def csv_header(column: str) -> str:
    """The CSV header of a frame column: a carbon quantity's name, else the column itself."""
    return CSV_HEADERS.get(column, column)


# Words for where figures come from, shown beside them (rollup codes -> text).
INTENSITY_METHODS = {
    "mix": "direct, derived from the zone's generation mix",
    "pub": "direct, published for the zone",
    "hr-dir": "direct, hourly provider",
    "hr-lca": "lifecycle, hourly provider (no direct figure)",
    "lca": "lifecycle (no generation mix for the zone)",
    "": "lifecycle (computed before gk-2026.2)",
}
MARKET_SOURCES = {
    "contract": "contractual instruments",
    "ctr+res": "contractual instruments + residual mix",
    "ctr+grid": "contractual instruments + grid average (no residual mix loaded)",
    "residual": "residual mix",
    "location": "grid average used — no residual mix loaded",
}
BOUNDARIES = {
    "owned": "owned (Scope 2)",
    "colocation": "colocation (Scope 2)",
    "cloud": "cloud (Scope 3 cat. 1)",
}
