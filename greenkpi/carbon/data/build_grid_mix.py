"""Rebuild grid_mix.csv (generation by fuel per country) from codecarbon's copy of the OWID data.

Not imported by the application. Run by hand with the same downloads as build_grid_annual.py:

    pip download --no-deps codecarbon==3.3.2 -d /tmp/w && unzip -q /tmp/w/codecarbon-*.whl -d /tmp/w/cc
    pip install --target /tmp/w/lib pycountry==26.2.16
    PYTHONPATH=/tmp/w/lib python greenkpi/carbon/data/build_grid_mix.py /tmp/w

The figures are Our World in Data's energy dataset (Ember, Energy Institute), CC BY 4.0, as
codecarbon 3.3.2 (MIT) ships them in ``data/private_infra/global_energy_mix.json``: TWh generated
per fuel, one year per country (2023 for 78 countries, 2022 for the others). The application
derives direct and upstream intensities from these shares and the per-fuel factors of
``carbon.methodology`` (docs/carbon-data.md). ``WORLD`` is the sum of the countries (stated).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

# Our column -> the OWID field (TWh). They add up to total_TWh for every country (checked below).
FUELS = {
    "coal": "coal_TWh",
    "gas": "gas_TWh",
    "oil": "oil_TWh",
    "nuclear": "nuclear_TWh",
    "hydro": "hydroelectricity_TWh",
    "wind": "wind_TWh",
    "solar": "solar_TWh",
    "bioenergy": "biofuel_TWh",
    "other_renewable": "other_renewable_exc_biofuel_TWh",
}
COLUMNS = ("zone", "mix_year", *(f"{fuel}_twh" for fuel in FUELS), "source")


def build(root: Path) -> list[dict[str, object]]:
    import pycountry

    mix = json.loads((root / "cc/codecarbon/data/private_infra/global_energy_mix.json").read_text())
    rows: list[dict[str, object]] = []
    world = dict.fromkeys(FUELS, 0.0)
    years: set[int] = set()
    for iso3, entry in sorted(mix.items()):
        country = pycountry.countries.get(alpha_3=iso3)
        twh = {fuel: float(entry.get(field) or 0.0) for fuel, field in FUELS.items()}
        total = float(entry.get("total_TWh") or 0.0)
        if country is None or total <= 0:
            continue
        if abs(sum(twh.values()) - total) > 0.01 * total + 0.01:
            raise SystemExit(f"{iso3}: fuels do not add up to total_TWh")
        for fuel, value in twh.items():
            world[fuel] += value
        years.add(int(entry["year"]))
        rows.append(
            {
                "zone": country.alpha_2,
                "mix_year": int(entry["year"]),
                **{f"{fuel}_twh": round(value, 4) for fuel, value in twh.items()},
                "source": "owid-energy",
            }
        )
    rows.sort(key=lambda r: str(r["zone"]))
    rows.append(
        {
            "zone": "WORLD",
            "mix_year": max(years),
            **{f"{fuel}_twh": round(value, 4) for fuel, value in world.items()},
            "source": "owid-energy-sum",
        }
    )
    return rows


def main() -> None:
    rows = build(Path(sys.argv[1]))
    out = Path(__file__).with_name("grid_mix.csv")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} zones -> {out}")


if __name__ == "__main__":
    main()
