"""CPU package and DRAM energy from RAPL through the powercap sysfs tree.

Zones are ``intel-rapl:N`` (a package, or ``psys``) with sub-zones ``intel-rapl:N:M`` (``core``,
``uncore``, ``dram``). Domains overlap: package contains core and uncore, psys contains package
and dram. We report each package (kind cpu) and each dram sub-zone (kind dram), never core or
uncore, and psys only when no package is readable, so no joule is ever counted twice.
``intel-rapl-mmio`` zones duplicate the MSR ones and are used only when those are absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from greenkpi_collector.sources.base import Reading, SourceUnavailable
from greenkpi_schema import DeviceInfo

DEFAULT_ROOT = Path("/sys/class/powercap")
_ZONE = re.compile(r"^(intel-rapl|intel-rapl-mmio):(\d+)(?::(\d+))?$")

PERMISSION_HINT = (
    "RAPL energy counters are readable only by root since Linux 5.10 (CVE-2020-8694); run the "
    "collector as root, or grant read access to energy_uj (docs/collector.md)"
)


@dataclass(frozen=True)
class Domain:
    uuid: str
    kind: str  # cpu | dram | host (psys)
    path: Path
    range_uj: int | None

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def discover(root: Path = DEFAULT_ROOT) -> list[Domain]:
    """The non-overlapping domains to report; SourceUnavailable with the reason if none."""
    if not root.is_dir():
        raise SourceUnavailable(f"no RAPL powercap tree at {root} (not Linux, or no intel_rapl)")
    zones: dict[str, list[tuple[Path, str, bool]]] = {"intel-rapl": [], "intel-rapl-mmio": []}
    for entry in sorted(root.iterdir()):
        match = _ZONE.match(entry.name)
        if not match:
            continue
        name = _read(entry / "name") or ""
        zones[match.group(1)].append((entry, name, match.group(3) is not None))
    family = zones["intel-rapl"] or zones["intel-rapl-mmio"]
    if not family:
        raise SourceUnavailable(f"no RAPL zones under {root}")
    denied = False
    domains: list[Domain] = []
    psys: list[Domain] = []
    for path, name, is_sub in family:
        if is_sub and name != "dram":
            continue  # core / uncore are inside their package
        if not is_sub and not (name.startswith("package") or name == "psys"):
            continue
        try:
            int((path / "energy_uj").read_text().strip())
        except PermissionError:
            denied = True
            continue
        except (OSError, ValueError):
            continue
        range_text = _read(path / "max_energy_range_uj")
        range_uj = int(range_text) if range_text and range_text.isdigit() else None
        if name == "psys":
            psys.append(Domain("rapl-psys", "host", path, range_uj))
        elif is_sub:
            package = path.name.split(":")[1]
            domains.append(Domain(f"rapl-dram-{package}", "dram", path, range_uj))
        else:
            package = path.name.split(":")[1]
            domains.append(Domain(f"rapl-package-{package}", "cpu", path, range_uj))
    if not any(d.kind == "cpu" for d in domains):
        # psys covers package and dram (and more): only ever alone, never added to them.
        domains = psys or domains
    if not domains:
        raise SourceUnavailable(PERMISSION_HINT if denied else f"no readable RAPL domain in {root}")
    return domains


class RaplSource:
    name = "rapl"

    def __init__(self, root: Path = DEFAULT_ROOT, cpu_model: str = "") -> None:
        self.domains = discover(root)
        self.cpu_model = cpu_model
        self._errors: dict[str, int] = {}

    def devices(self) -> list[DeviceInfo]:
        return [
            DeviceInfo(uuid=d.uuid, kind=d.kind, model=self.cpu_model if d.kind == "cpu" else "")
            for d in self.domains
        ]

    def read(self) -> list[Reading]:
        out = []
        for d in self.domains:
            try:
                value = d.read_uj()
            except (OSError, ValueError) as exc:
                key = f"rapl {d.uuid}: {exc.__class__.__name__}: {exc}"
                self._errors[key] = self._errors.get(key, 0) + 1
                continue
            out.append(
                Reading(
                    uuid=d.uuid,
                    kind=d.kind,
                    method="counter",
                    counter=value,
                    counter_unit_j=1e-6,
                    counter_range=d.range_uj,
                )
            )
        return out

    def errors(self) -> list[str]:
        counted = [m if n == 1 else f"{m} (x{n})" for m, n in self._errors.items()]
        self._errors.clear()
        return counted

    def close(self) -> None:
        pass
