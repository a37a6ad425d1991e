"""What the exporter sources share: the scrape, the energy-unit check and the relayed counter.

The exporters relay the GPU's energy counter, but through a name and a unit that changed between
releases (dcgm-exporter 4.9: mJ -> J). A counter in the wrong unit is off by 1000x, the failure
users report most, so the counter the windows see is a *relay* this module builds, interval by
interval, from the exporter's counter (through ``counter_delta``, like NVML's) only once its unit
has been confirmed against the power gauge; until then, and for any interval that is implausible,
the relay advances by the power integral instead and the reading says ``power_integral``. Windows
made of such intervals are therefore flagged by their method, and the reason is in source_errors.
"""

from __future__ import annotations

import itertools
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from greenkpi_collector.attribution import Claim
from greenkpi_collector.sources.base import ProcUse, Reading
from greenkpi_collector.windows import counter_delta
from greenkpi_schema import DeviceInfo
from greenkpi_schema.v1 import K8S_NAMESPACE_PATTERN, K8S_POD_PATTERN

MAX_BODY_BYTES = 8 * 2**20  # a node's exposition is tens of KiB; more is not an exporter
# Energy growth over power integral between counter changes: a right unit gives about 1 (sampled
# power misses some draw), a unit off by 1000x gives 1000 or 0.001. Anything outside is refused.
RATIO_TOLERANCE = 3.0
MIN_CHECK_SPAN_S = 2.0  # the first two counter changes must be at least this far apart
# No GPU draws 200 kW: an interval faster than this is a unit jump (e.g. an exporter upgrade),
# even allowing for exporters that update their counter in 30 s steps.
ABSURD_W = 200_000.0
_TAG_MAX = 200
_pseudo_pids = itertools.count(-1, -1)  # pods are not processes: negative ids, never real PIDs
# A pod seen through a MIG instance's series: the pods page says "MIG slice" (ingest.scheduler).
MIG_TAG = ("gpu_sharing", "mig")
K8S_NAMESPACE = re.compile(K8S_NAMESPACE_PATTERN)
K8S_POD = re.compile(K8S_POD_PATTERN)


class ScrapeError(Exception):
    pass


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


@dataclass
class Family:
    name: str  # the sample name as served (counters keep their _total)
    kind: str
    help: str
    series: list[Series] = field(default_factory=list)


def fetch(url: str, timeout_s: float) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"cannot scrape: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ScrapeError(f"cannot scrape: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_BODY_BYTES:
        raise ScrapeError(f"exposition larger than {MAX_BODY_BYTES // 2**20} MiB")
    return body.decode("utf-8", errors="replace")


def parse(text: str, wanted: tuple[str, ...] = ()) -> dict[str, Family]:
    """Families by sample name, through prometheus_client's reference parser. With ``wanted``,
    only the samples of families starting so are parsed (HELP and TYPE lines of all are kept):
    a dcgm-exporter node serves ~25 fields per GPU and we read five; parsing the rest at every
    scrape cost more than the rest of the collector (bench/collector_overhead.py --exporter)."""
    if wanted:
        text = "\n".join(line for line in text.splitlines() if line.startswith(("#", *wanted)))
    out: dict[str, Family] = {}
    try:
        for family in text_string_to_metric_families(text):
            if not family.samples and family.name not in out:
                out[family.name] = Family(family.name, family.type, family.documentation)
            for sample in family.samples:
                fam = out.get(sample.name)
                if fam is None:
                    fam = out[sample.name] = Family(sample.name, family.type, family.documentation)
                fam.series.append(Series(dict(sample.labels), float(sample.value)))
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"not Prometheus exposition text: {exc}") from None
    if not out:
        raise ScrapeError("no metric in the exposition (empty, garbage, or not this exporter)")
    return out


@dataclass
class Snapshot:
    """One GPU as the exporter shows it, already in SI units (J, W, 0..1, bytes, deg C)."""

    uuid: str
    name: str = ""
    energy_j: float | None = None
    power_w: float | None = None
    busy: float | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    temperature_c: float | None = None
    pods: list[tuple[tuple[tuple[str, str], ...], float | None]] = field(default_factory=list)


class EnergyCheck:
    """Is the energy series in the unit we read it in? Compares its growth between two counter
    changes (so exporters that update in steps are judged over whole steps) with the integral of
    the power gauge over the same time."""

    def __init__(self) -> None:
        self.verdict = "unverified"  # ok | bad | no_power
        self.ratio: float | None = None
        self.p_int = 0.0
        self._pt: float | None = None
        self._pw: float | None = None
        self._last: float | None = None
        self._first: tuple[float, float, float] | None = None  # (t, energy, power integral)

    def observe(self, t: float, energy_j: float | None, power_w: float | None) -> str:
        if power_w is not None:
            if self._pt is not None and self._pw is not None and t > self._pt:
                self.p_int += (t - self._pt) * (power_w + self._pw) / 2
            self._pt, self._pw = t, power_w
        if energy_j is None:
            return self.verdict
        if self._last is not None and energy_j < self._last:
            self.verdict, self._first, self.ratio = "unverified", None, None  # reset: judge anew
        elif self._last is not None and energy_j != self._last:
            if self._first is None:
                self._first = (t, energy_j, self.p_int)
            elif t - self._first[0] >= MIN_CHECK_SPAN_S and self.verdict in ("unverified", "bad"):
                grown, powered = energy_j - self._first[1], self.p_int - self._first[2]
                if self._pw is None or powered <= 0:
                    self.verdict = "no_power"  # nothing to judge by: the declared unit stands
                elif powered > 0:
                    self.ratio = grown / powered
                    ok = 1 / RATIO_TOLERANCE <= self.ratio <= RATIO_TOLERANCE
                    self.verdict = "ok" if ok else "bad"
        self._last = energy_j
        return self.verdict


@dataclass
class Relay:
    """The counter (integer mJ) the windows see for one GPU; see the module docstring."""

    mj: int = 0
    raw_mj: int | None = None  # the exporter's counter, converted to mJ
    t: float | None = None
    power_w: float | None = None
    check: EnergyCheck = field(default_factory=EnergyCheck)
    # Joules the relay took from power since the exporter's counter last moved: the next counter
    # delta covers that span too (exporters update in steps), so it is counted once, not twice.
    from_power_j: float = 0.0

    def step(self, t: float, energy_j: float | None, power_w: float | None) -> tuple[str, str]:
        """Advance to time t; returns (method of this interval, problem or '')."""
        verdict = self.check.observe(t, energy_j, power_w)
        raw = round(energy_j * 1000) if energy_j is not None else None
        if self.t is None or t <= self.t:
            self.t, self.raw_mj = t, raw if raw is not None else self.raw_mj
            self.power_w = power_w if power_w is not None else self.power_w
            return "counter", ""
        dt = t - self.t
        powers = [p for p in (self.power_w, power_w) if p is not None]
        integral_j = sum(powers) / len(powers) * dt if powers else 0.0
        delta = (
            counter_delta(self.raw_mj, raw, None)
            if raw is not None and self.raw_mj is not None
            else None
        )
        if raw is None and self.raw_mj is not None:
            # The series is missing from this scrape: like a missed NVML read, wait; the next
            # delta (or power integral) covers this interval too.
            return "counter", ""
        method, problem, add_j = "power_integral", "", integral_j
        if raw is None:
            pass  # no energy series at all: power readings, flagged as such
        elif delta is None:
            problem = "energy counter reset (interval from power readings)"
        elif delta / 1000 / dt > ABSURD_W:
            problem = f"energy counter jumped {delta / 1000:.3g} J in {dt:.1f} s (unit change?)"
        elif verdict in ("ok", "no_power"):
            method, add_j = "counter", max(0.0, delta / 1000 - self.from_power_j) if delta else 0.0
        elif verdict == "bad":
            problem = (
                f"energy series grows {self.check.ratio:.3g}x the power integral: wrong unit; "
                "energy from power readings"
            )
        # unverified: power readings until two counter changes confirm the unit (no problem yet)
        self.mj += max(0, round(add_j * 1000))
        if method == "power_integral":
            self.from_power_j += add_j
        if raw is not None and raw != self.raw_mj:
            self.from_power_j = 0.0  # the counter moved: a new span starts here
        self.t, self.power_w = t, power_w if power_w is not None else self.power_w
        if raw is not None:
            self.raw_mj = raw
        return method, problem


class PodTable:
    """Pods (from exporter labels) as pseudo-processes with negative ids, so the window's split
    and the attributor treat them like NVML processes. A pod whose namespace and name the schema
    accepts is claimed as a Kubernetes pod (``job`` = ("", "<namespace>/<pod>"): the share is
    sent with ``scheduler: {kind: k8s, ...}``, like the kubelet path's, so the ``k8s-*`` identity
    mappings apply); anything else keeps its labels as tags."""

    def __init__(self) -> None:
        self._ids: dict[tuple[tuple[str, str], ...], int] = {}
        self._claims: dict[int, Claim] = {}
        self.containers: dict[str, str] = {}  # "<namespace>/<pod>" -> its container

    def pid(self, tags: tuple[tuple[str, str], ...]) -> int:
        if tags not in self._ids:
            if len(self._ids) > 10_000:  # pods come and go; forget the oldest
                old = next(iter(self._ids))
                self._claims.pop(self._ids.pop(old), None)
                self.containers.clear()  # re-learnt from the labels of the pods still served
            pid = next(_pseudo_pids)
            self._ids[tags] = pid
            self._claims[pid] = self._claim(tags)
        return self._ids[tags]

    def _claim(self, tags: tuple[tuple[str, str], ...]) -> Claim:
        found = dict(tags)
        namespace, pod = found.get("k8s_namespace", ""), found.get("k8s_pod", "")
        if K8S_NAMESPACE.search(namespace) and K8S_POD.search(pod):
            key = f"{namespace}/{pod}"
            self.containers[key] = found.get("k8s_container", "")[:63]
            mig = (MIG_TAG,) if MIG_TAG in tags else ()
            return Claim(pid=None, team=None, model=None, run=None, tags=mig, job=("", key))
        return Claim(
            pid=None,
            team=None,
            model=None,
            run=None,
            tags=tuple((k, v[:_TAG_MAX]) for k, v in tags),
        )

    def claim(self, pid: int) -> Claim | None:
        return self._claims.get(pid)


class ExporterSource:
    """Scrape, turn each GPU's snapshot into a Reading with a relayed counter."""

    name = "exporter"
    wanted: tuple[str, ...] = ()  # metric-name prefixes worth parsing

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        interval_s: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.url = url
        self.timeout_s = timeout_s
        # Exporters refresh their values every few seconds (dcgm-exporter: 30 s by default):
        # between scrapes the last snapshot is re-used, and the relay moves on in time.
        self.interval_s = interval_s
        self._snaps: list[Snapshot] = []
        self._scraped_at: float | None = None
        self.clock = clock or time.time
        self.pods = PodTable()
        self.relays: dict[str, Relay] = {}
        self.known: dict[str, DeviceInfo] = {}
        self.notes: list[str] = []  # standing facts (the generation served, what is not verified)
        self._errors: dict[str, int] = {}
        try:
            self.read()  # learn the devices now; an exporter down at start-up is not fatal
        except Exception as exc:
            self._note(f"{self.name} {url}: {exc}")

    def snapshots(self, families: dict[str, Family]) -> list[Snapshot]:  # pragma: no cover
        raise NotImplementedError

    def devices(self) -> list[DeviceInfo]:
        return list(self.known.values())

    def read(self) -> list[Reading]:
        t = self.clock()
        if self._scraped_at is not None and t - self._scraped_at < self.interval_s:
            snaps = self._snaps
        else:
            try:
                snaps = self.snapshots(parse(fetch(self.url, self.timeout_s), self.wanted))
            except ScrapeError as exc:
                self._note(f"{self.name} {self.url}: {exc}")
                # Like a missed NVML read: known GPUs report no counter; the next delta covers it.
                return [Reading(uuid, "gpu", "counter") for uuid in self.known]
            self._snaps, self._scraped_at = snaps, t
        readings = []
        for snap in snaps:
            relay = self.relays.setdefault(snap.uuid, Relay())
            if snap.uuid not in self.known:
                self.known[snap.uuid] = DeviceInfo(uuid=snap.uuid, kind="gpu", model=snap.name)
            method, problem = relay.step(t, snap.energy_j, snap.power_w)
            if problem:
                self._note(f"{self.name} {snap.uuid}: {problem}")
            missed = method == "counter" and snap.energy_j is None
            reading = Reading(
                uuid=snap.uuid,
                kind="gpu",
                method=method,  # per interval: power_integral flags a window (windows.py)
                counter=None if missed else relay.mj,
                counter_unit_j=1e-3,
                power_w=snap.power_w,
                busy=snap.busy,
                mem_used_bytes=snap.mem_used_bytes,
                mem_total_bytes=snap.mem_total_bytes,
                temperature_c=snap.temperature_c,
            )
            reading.procs = tuple(ProcUse(self.pods.pid(tags), util) for tags, util in snap.pods)
            readings.append(reading)
        return readings

    def _note(self, message: str) -> None:
        self._errors[message] = self._errors.get(message, 0) + 1

    def errors(self) -> list[str]:
        counted = [m if n == 1 else f"{m} (x{n})" for m, n in self._errors.items()]
        self._errors.clear()
        unverified = [
            f"{self.name} {uuid}: energy unit not yet confirmed against power; windows use power "
            "readings meanwhile"
            for uuid, r in self.relays.items()
            if r.check.verdict == "unverified"
        ]
        return self.notes + unverified + counted

    def close(self) -> None:
        pass


def label(labels: dict[str, str], *names: str) -> str:
    for n in names:
        if labels.get(n):
            return labels[n]
    return ""


def first_value(values: list[Any]) -> Any:
    return values[0] if values else None
