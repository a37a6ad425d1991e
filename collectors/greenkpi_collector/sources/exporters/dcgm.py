"""NVIDIA dcgm-exporter (``--source dcgm-exporter=http://NODE:9400/metrics``).

Two generations of field names are served (docs/collector.md, "Exporter sources"):

* up to 4.8: ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (counter, mJ), ``DCGM_FI_DEV_POWER_USAGE``
  (W), ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` / ``_FREE`` (MiB),
  ``DCGM_FI_DEV_GPU_TEMP`` (C); labels ``gpu``, ``UUID``, ``modelName``, ``pod``, ``namespace``,
  ``container`` (etc/default-counters.csv and the exposition template, NVIDIA/dcgm-exporter);
* 4.9 renamed those fields to their DCGM 4.7 names and changed units (energy mJ -> J,
  utilization % -> 0..1, memory MiB -> bytes), renamed the driver label to
  ``DCGM_FI_SYSTEM_DRIVER_VERSION`` and added ``DCGM_FI_DEV_FB_CAPACITY_BYTES``; 4.10 renamed four
  profiling fields (``DCGM_FI_PROF_PCIE_TX_BYTES`` -> ``..._BYTES_PER_SECOND``, ...).

DCGM 4.7's own field table (DcgmFields.cpp) and go-dcgm's alias tests name some of the new fields:
``DCGM_FI_DEV_BOARD_POWER_WATTS`` (was ``POWER_USAGE``), ``DCGM_FI_DEV_GPU_UTIL_RATIO``,
``DCGM_FI_DEV_GPU_TEMP_CELSIUS``; the names the exporter serves for energy in J and memory in bytes
could not be checked against an authoritative list here. So fields are found by their DCGM prefix
(``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION...``) or known name, and each unit is read from, in order:
a unit suffix in the name (``_JOULES``), the HELP text (``(in mJ)``), the generation's default. The
energy unit is then confirmed against the power gauge (``scrape.EnergyCheck``) before any counter
delta is trusted.
"""

from __future__ import annotations

import re

from greenkpi_collector.sources.exporters.scrape import ExporterSource, Family, Snapshot, label

ENERGY, POWER, UTIL = (
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_UTIL",  # DCGM 4.7: DCGM_FI_DEV_GPU_UTIL_RATIO (same prefix)
)
BOARD_POWER = "DCGM_FI_DEV_BOARD_POWER_WATTS"  # DCGM 4.7's name for DCGM_FI_DEV_POWER_USAGE
FB_USED, FB_FREE, FB_TOTAL = "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_TOTAL"
FB_CAPACITY = "DCGM_FI_DEV_FB_CAPACITY_BYTES"  # 4.9+
TEMP = "DCGM_FI_DEV_GPU_TEMP"
MIB = 2**20

# Unit words to a factor into SI (J, W, 0..1, bytes, deg C): as a name suffix (upper case) ...
_NAME_UNITS = {
    "energy": {"MILLIJOULES": 1e-3, "JOULES": 1.0},
    "power": {"MILLIWATTS": 1e-3, "WATTS": 1.0},
    "ratio": {"PERCENT": 0.01, "RATIO": 1.0},
    "memory": {"MIB": MIB, "BYTES": 1.0},
    "temperature": {"CELSIUS": 1.0},
}
# ... or as written in a HELP text "(in mJ)" (case matters: mJ is not MJ).
_HELP_UNITS = {
    "energy": {"mJ": 1e-3, "J": 1.0, "millijoules": 1e-3, "joules": 1.0},
    "power": {"W": 1.0, "mW": 1e-3, "watts": 1.0},
    "ratio": {"%": 0.01, "ratio": 1.0},
    "memory": {"MiB": MIB, "MB": MIB, "bytes": 1.0, "B": 1.0},  # DCGM's "MB" means MiB
    "temperature": {"C": 1.0},
}
# What each generation means when neither the name nor the HELP text says.
_DEFAULTS = {
    "legacy": {"energy": 1e-3, "power": 1.0, "ratio": 0.01, "memory": MIB, "temperature": 1.0},
    "4.9": {"energy": 1.0, "power": 1.0, "ratio": 1.0, "memory": 1.0, "temperature": 1.0},
}
_HELP_UNIT = re.compile(r"\(in ([^)]+)\)")


def generation(families: dict[str, Family]) -> str:
    """'4.10', '4.9' or 'legacy' (up to 4.8), from signals the release notes name."""
    names = set(families)
    if any(n.startswith("DCGM_FI_PROF_") and n.endswith("_BYTES_PER_SECOND") for n in names):
        return "4.10"
    if FB_CAPACITY in names or any(
        "DCGM_FI_SYSTEM_DRIVER_VERSION" in s.labels for f in families.values() for s in f.series
    ):
        return "4.9"
    return "legacy"


def find(families: dict[str, Family], prefix: str, avoid: tuple[str, ...] = ()) -> Family | None:
    """The family named ``prefix`` or ``prefix_<UNIT>`` (never e.g. ``..._INSTANT``)."""
    if prefix in families:
        return families[prefix]
    for name, family in sorted(families.items()):
        rest = name[len(prefix) :]
        if name.startswith(prefix + "_") and not any(a in rest for a in avoid):
            return family
    return None


def factor(family: Family, prefix: str, quantity: str, gen: str) -> tuple[float, str]:
    """(factor into SI, where the unit came from)."""
    suffix = family.name[len(prefix) :].lstrip("_").removesuffix("_TOTAL").upper()
    if suffix in _NAME_UNITS[quantity]:
        return _NAME_UNITS[quantity][suffix], f"name {family.name}"
    found = _HELP_UNIT.search(family.help or "")
    word = found.group(1).strip() if found else ""
    if word in _HELP_UNITS[quantity]:
        return _HELP_UNITS[quantity][word], f"HELP '(in {word})'"
    return _DEFAULTS["legacy" if gen == "legacy" else "4.9"][
        quantity
    ], f"dcgm-exporter {gen} default"


class DcgmExporterSource(ExporterSource):
    name = "dcgm-exporter"
    wanted = (ENERGY, POWER, BOARD_POWER, UTIL, "DCGM_FI_DEV_FB_", TEMP)

    def snapshots(self, families: dict[str, Family]) -> list[Snapshot]:
        gen = generation(families)
        snaps: dict[str, Snapshot] = {}
        pods: dict[str, set[tuple[tuple[str, str], ...]]] = {}
        units: list[str] = []
        for quantity, prefix, avoid, attr in (
            ("energy", ENERGY, (), "energy_j"),
            ("power", POWER, ("INSTANT",), "power_w"),
            ("power", BOARD_POWER, ("RAW", "LIMIT"), "power_w"),
            ("ratio", UTIL, (), "busy"),
            ("memory", FB_CAPACITY, (), "mem_total_bytes"),
            ("memory", FB_TOTAL, (), "mem_total_bytes"),
            ("memory", FB_USED, ("PERCENT",), "mem_used_bytes"),
            ("memory", FB_FREE, (), "_free"),  # total = used + free when no total is served
            ("temperature", TEMP, (), "temperature_c"),
        ):
            family = find(families, prefix, avoid)
            if family is None:
                continue
            scale, origin = factor(family, prefix, quantity, gen)
            if attr == "energy_j":
                units.append(f"energy {family.name} x{scale:g} J ({origin})")
            # One value per GPU: a MIG instance or a second pod repeats the GPU's own series.
            for series in sorted(family.series, key=lambda s: "GPU_I_ID" in s.labels):
                uuid = label(series.labels, "UUID", "uuid", "gpu_uuid")
                if not uuid:
                    continue
                snap = snaps.setdefault(uuid, Snapshot(uuid=uuid))
                snap.name = snap.name or label(series.labels, "modelName", "model_name")
                tags = pod_tags(series.labels)
                if tags:
                    pods.setdefault(uuid, set()).add(tags)
                if attr == "_free" or getattr(snap, attr) is not None:
                    if attr == "_free" and snap.mem_used_bytes is not None:
                        free = series.value * scale
                        snap.mem_total_bytes = snap.mem_total_bytes or int(
                            snap.mem_used_bytes + free
                        )
                    continue
                value = series.value * scale
                if quantity == "ratio" and value > 1.0:
                    value /= 100  # said ratio, served percent: no GPU is 4000 % busy
                if quantity == "memory":
                    value = int(value)
                setattr(snap, attr, value)
        self.notes = [f"dcgm-exporter {self.url}: field names of {gen}; " + "; ".join(units)]
        for uuid, snap in snaps.items():
            # No per-pod utilization from DCGM: a GPU's pods share it equally (method equal).
            snap.pods = [(tags, None) for tags in sorted(pods.get(uuid, ()))]
        return list(snaps.values())


def pod_tags(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    pod = label(labels, "pod", "pod_name")
    if not pod:
        return ()
    tags = {"k8s_pod": pod, "k8s_namespace": label(labels, "namespace", "pod_namespace")}
    container = label(labels, "container", "container_name")
    if container:
        tags["k8s_container"] = container
    if labels.get("GPU_I_ID"):
        tags["gpu_sharing"] = "mig"  # the pod's series is a MIG instance's: it holds a slice
    return tuple(sorted((k, v) for k, v in tags.items() if v))
