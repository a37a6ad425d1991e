"""Schema version 1 of an ingest batch: host facts plus measurement windows (docs/api.md).

Validation is hand-written rather than declarative because it sits on the ingest hot path: a DRF
serializer costs ~35 ms per 1,000 samples, this loop a few. It collects every problem (up to
``MAX_ERRORS``) with a JSON pointer, so a client can fix all of them at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)
DEVICE_KINDS = ("gpu", "cpu", "dram", "host")
# How a window's energy was obtained, best first: a hardware energy counter's delta, power readings
# integrated over time, or a model (e.g. TDP x load).
METHODS = ("counter", "power_integral", "estimate")
# How a share of a window was attributed: by per-process utilization, split equally, declared by
# the client as a whole, nobody claimed it, or a scheduler had allocated the GPU to a job that ran
# no process on it (or kept it < 5 % busy): the job is charged for the idle allocation.
SHARE_METHODS = ("utilization", "equal", "declared", "unattributed", "allocated-idle")
# Who scheduled the work a share belongs to (shares[].scheduler.kind): a Slurm job (SlurmJob) or a
# Kubernetes pod (K8sPod, issue 13); the wire field `kind` tells the two object shapes apart.
SCHEDULER_KINDS = ("slurm", "k8s")

MAX_ERRORS = 100
MAX_KEY_LEN = 200
MAX_TAGS = 32
MAX_SHARES = 64
MAX_DEVICES = 1024
_ENERGY_MAX_J = 1e15  # a petajoule in one window is a corrupt counter, not a measurement
_POWER_MAX_W = 1e7
_TEMP_RANGE_C = (-100.0, 300.0)
_INT_MAX = 2**62
PID_MAX = 2**31  # stored as a 32-bit integer; Linux caps PIDs at 2**22


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server accepts; the collector uses the same numbers to pre-check."""

    max_samples: int = 10_000
    max_window_s: float = 3600.0
    max_future_s: float = 600.0
    max_age_s: float = 31 * 86400.0


@dataclass(frozen=True, slots=True)
class FieldError:
    pointer: str  # RFC 6901 JSON pointer into the body, e.g. /samples/3/energy_j
    code: str
    message: str
    sample_index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pointer": self.pointer,
            "code": self.code,
            "detail": self.message,
            "sample_index": self.sample_index,
        }


class ValidationFailed(ValueError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__(
            f"{len(errors)} invalid field(s): {errors[0].pointer}: {errors[0].message}"
        )


# Slurm's job id as people write it: "1234", an array task "1234_7", a het job component "1234+1".
# [0-9], not \d (which also matches other scripts' digits); \Z, not $ (which allows a trailing
# newline). fast_v1 uses the same pattern through msgspec, which also calls re.search.
SLURM_JOB_ID_PATTERN = r"^[0-9]{1,10}(?:_[0-9]{1,10}|\+[0-9]{1,10})?\Z"
_SLURM_JOB_ID = re.compile(SLURM_JOB_ID_PATTERN)
_UINT32 = 2**32
# Longest accepted text per SlurmJob field (characters); the collector truncates to these.
SLURM_TEXT_LIMITS = {
    "cluster": 100,
    "user": 100,
    "account": 100,
    "partition": 100,
    "qos": 100,
    "job_name": 200,
    "comment": 500,
    "nodes": 1000,
}
SLURM_ID_FIELDS = ("array_job_id", "array_task_id", "het_job_id", "het_job_offset")


@dataclass(slots=True)
class SlurmJob:
    """The Slurm job a share's processes (or its idle allocated GPU) belonged to.

    Only ``cluster`` and ``job_id`` are required: a collector whose ``scontrol`` failed sends what it
    knows (the job id from the process's cgroup or environment) with ``complete=False``.
    """

    kind: ClassVar[str] = "slurm"
    cluster: str
    job_id: str
    array_job_id: int | None = None
    array_task_id: int | None = None
    het_job_id: int | None = None
    het_job_offset: int | None = None
    user: str | None = None
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    job_name: str | None = None
    comment: str | None = None
    nodes: str | None = None  # a Slurm nodelist expression, e.g. "gpu[01-04]"
    start: datetime | None = None
    end: datetime | None = None
    complete: bool = True


# Kubernetes names (kubernetes.io/docs/concepts/overview/working-with-objects/names): a namespace is
# an RFC 1123 label (<= 63), a pod an RFC 1123 subdomain (<= 253). Label keys are an optional DNS
# prefix (<= 253) + "/" + a name (<= 63); values <= 63 (labels), annotations are bounded here.
K8S_NAMESPACE_PATTERN = r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z"
K8S_POD_PATTERN = r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?\Z"
_K8S_NAMESPACE = re.compile(K8S_NAMESPACE_PATTERN)
_K8S_POD = re.compile(K8S_POD_PATTERN)
K8S_TEXT_LIMITS = {"cluster": 100, "container": 63, "uid": 64}
K8S_MAX_LABELS = 64
K8S_LABEL_KEY_LEN = 317
K8S_LABEL_VALUE_LEN = 63
K8S_MAX_ANNOTATIONS = 16  # only the ones GreenKPI reads (greenkpi.io/*), never all of a pod's
K8S_ANNOTATION_VALUE_LEN = MAX_KEY_LEN
# A label or annotation naming the share's run key explicitly (else k8s:<namespace>/<pod>).
K8S_RUN_LABEL = "greenkpi.io/run"


@dataclass(slots=True)
class K8sPod:
    """The Kubernetes pod (and container) a share's processes or idle allocated GPU belonged to.

    ``namespace`` and ``pod`` are required; the rest is what the API server told the collector.
    ``complete=False``: the API server could not be asked (403, timeout) and no cached labels were
    known, so labels are missing rather than empty.
    """

    kind: ClassVar[str] = "k8s"
    namespace: str
    pod: str
    cluster: str | None = None
    container: str | None = None
    uid: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    complete: bool = True

    @property
    def job_id(self) -> str:
        """The pod as one scheduler job: ``<namespace>/<pod>`` (unique within a cluster)."""
        return f"{self.namespace}/{self.pod}"


# A share's scheduler identity.
Scheduler = SlurmJob | K8sPod


@dataclass(slots=True)
class Share:
    energy_j: float
    method: str
    team: str | None = None
    model: str | None = None
    run: str | None = None
    pid: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    scheduler: Scheduler | None = None


@dataclass(slots=True)
class Sample:
    device_uuid: str
    device_kind: str
    start: datetime
    end: datetime
    energy_j: float
    method: str
    power_avg_w: float | None = None
    power_peak_w: float | None = None
    util_busy: float | None = None  # fraction of the window the device was busy, 0..1
    util_sm: float | None = None  # SM activity fraction, when the source reports it
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    temperature_c: float | None = None
    idle_s: float | None = None
    shares: list[Share] = field(default_factory=list)


@dataclass(slots=True)
class DeviceInfo:
    uuid: str
    kind: str
    model: str = ""
    power_limit_w: float | None = None


@dataclass(slots=True)
class HostFacts:
    hostname: str
    agent_version: str = ""
    site: str | None = None
    clock: datetime | None = None
    spool_depth: int | None = None
    dropped_windows: int | None = None
    source_errors: list[str] = field(default_factory=list)
    devices: list[DeviceInfo] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    host: HostFacts
    samples: list[Sample]
    schema_version: int = SCHEMA_VERSION


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, the only time format the schema emits."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: all GreenKPI times are aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_batch(data: Any, *, now: datetime, limits: Limits = Limits()) -> Batch:
    """Validate a decoded JSON body into a Batch, or raise ValidationFailed with every problem."""
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("", "type", "the body must be a JSON object")])
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise ValidationFailed(
            [
                FieldError(
                    "/schema_version",
                    "unsupported_version",
                    f"schema_version {version!r} is not supported; this server accepts "
                    f"{', '.join(map(str, SUPPORTED_VERSIONS))}",
                )
            ]
        )
    host = _parse_host(data.get("host"), errors)
    raw_samples = data.get("samples")
    samples: list[Sample] = []
    if not isinstance(raw_samples, list):
        errors.append(FieldError("/samples", "type", "samples must be a list"))
    elif len(raw_samples) > limits.max_samples:
        # The caller maps this code to 413: the batch must be split, not fixed.
        raise ValidationFailed(
            [
                FieldError(
                    "/samples",
                    "too_many_samples",
                    f"{len(raw_samples)} samples exceed the limit of {limits.max_samples} per batch",
                )
            ]
        )
    else:
        samples = _parse_samples(raw_samples, now, limits, errors)
    if errors:
        raise ValidationFailed(errors[:MAX_ERRORS])
    assert host is not None
    return Batch(host=host, samples=samples, schema_version=version)


# --- helpers ---------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | str:
    """An aware datetime in UTC, or an error message."""
    if type(value) is not str:
        return "must be an ISO 8601 string with a time zone, e.g. 2026-01-31T12:00:00Z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"{value[:40]!r} is not an ISO 8601 time"
    offset = moment.utcoffset()
    if offset is None:
        return f"{value[:40]!r} has no time zone; send UTC with a Z"
    return moment if offset == _ZERO and moment.tzinfo is UTC else moment.astimezone(UTC)


_ZERO = timedelta(0)


def _key(value: Any, pointer: str, errors: list[FieldError], index: int | None) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not value or len(value) > MAX_KEY_LEN:
        errors.append(
            FieldError(
                pointer,
                "type",
                f"must be a non-empty string of at most {MAX_KEY_LEN} characters",
                index,
            )
        )
        return None
    return value


def _parse_host(raw: Any, errors: list[FieldError]) -> HostFacts | None:
    if not isinstance(raw, dict):
        errors.append(
            FieldError("/host", "type", "host must be an object with at least a hostname")
        )
        return None
    hostname = raw.get("hostname")
    if type(hostname) is not str or not hostname.strip() or len(hostname) > 255:
        errors.append(
            FieldError(
                "/host/hostname", "required", "hostname must be a non-empty string (max 255)"
            )
        )
        hostname = ""
    facts = HostFacts(hostname=hostname.strip())
    agent_version = raw.get("agent_version", "")
    if type(agent_version) is not str or len(agent_version) > 64:
        errors.append(FieldError("/host/agent_version", "type", "must be a string (max 64)"))
    else:
        facts.agent_version = agent_version
    facts.site = _key(raw.get("site"), "/host/site", errors, None)
    if raw.get("clock") is not None:
        clock = _parse_time(raw["clock"])
        if isinstance(clock, str):
            errors.append(FieldError("/host/clock", "time", clock))
        else:
            facts.clock = clock
    for name in ("spool_depth", "dropped_windows"):
        value = raw.get(name)
        if value is None:
            continue
        if type(value) is not int or not 0 <= value < _INT_MAX:
            errors.append(FieldError(f"/host/{name}", "type", "must be a non-negative integer"))
        else:
            setattr(facts, name, value)
    source_errors = raw.get("source_errors", [])
    if not isinstance(source_errors, list) or not all(
        type(e) is str and len(e) <= 1000 for e in source_errors
    ):
        errors.append(
            FieldError("/host/source_errors", "type", "must be a list of strings (max 1000 each)")
        )
    else:
        facts.source_errors = source_errors[:50]
    devices = raw.get("devices", [])
    if not isinstance(devices, list) or len(devices) > MAX_DEVICES:
        errors.append(
            FieldError("/host/devices", "type", f"must be a list of at most {MAX_DEVICES} objects")
        )
        return facts
    for i, dev in enumerate(devices):
        pointer = f"/host/devices/{i}"
        if not isinstance(dev, dict):
            errors.append(FieldError(pointer, "type", "must be an object"))
            continue
        uuid = _key(dev.get("uuid"), f"{pointer}/uuid", errors, None)
        kind = dev.get("kind")
        if kind not in DEVICE_KINDS:
            errors.append(
                FieldError(f"{pointer}/kind", "choice", f"must be one of {', '.join(DEVICE_KINDS)}")
            )
            continue
        model = dev.get("model", "")
        if type(model) is not str or len(model) > 200:
            errors.append(FieldError(f"{pointer}/model", "type", "must be a string (max 200)"))
            model = ""
        limit = dev.get("power_limit_w")
        if limit is not None and not (type(limit) in (int, float) and 0 <= limit < _POWER_MAX_W):
            errors.append(
                FieldError(f"{pointer}/power_limit_w", "range", "must be a finite number >= 0")
            )
            limit = None
        if uuid is None:
            errors.append(FieldError(f"{pointer}/uuid", "required", "uuid is required"))
            continue
        facts.devices.append(DeviceInfo(uuid=uuid, kind=kind, model=model, power_limit_w=limit))
    return facts


# Optional numeric fields: (name, low, high). Comparisons also reject NaN, which compares false.
_OPTIONAL_FLOATS = (
    ("power_avg_w", 0.0, _POWER_MAX_W),
    ("power_peak_w", 0.0, _POWER_MAX_W),
    ("util_busy", 0.0, 1.0),
    ("util_sm", 0.0, 1.0),
    ("temperature_c", *_TEMP_RANGE_C),
)


def _parse_samples(
    raw_samples: list[Any], now: datetime, limits: Limits, errors: list[FieldError]
) -> list[Sample]:
    latest = now + timedelta(seconds=limits.max_future_s)
    earliest = now - timedelta(seconds=limits.max_age_s)
    max_window = timedelta(seconds=limits.max_window_s)
    seen: set[tuple[str, datetime]] = set()
    samples: list[Sample] = []
    # (start string, end string) -> (start, end, length in s) for windows that passed every window
    # check; a batch repeats each window once per device, so most samples skip parsing entirely.
    windows: dict[tuple[str, str], tuple[datetime, datetime, float]] = {}
    window_check = (latest, earliest, max_window)
    for i, raw in enumerate(raw_samples):
        if len(errors) >= MAX_ERRORS:
            break
        fast = _fast_sample(raw, windows, window_check, limits.max_window_s)
        if fast is not None:
            key = (fast.device_uuid, fast.start)
            if key not in seen:
                seen.add(key)
                samples.append(fast)
                continue
        # Anything the fast path is unsure about (including a duplicate) takes the full path below,
        # which decides exactly as before and names every problem.
        base = f"/samples/{i}"
        if not isinstance(raw, dict):
            errors.append(FieldError(base, "type", "a sample must be an object", i))
            continue
        before = len(errors)
        uuid: Any = raw.get("device_uuid")
        if type(uuid) is not str or not uuid or len(uuid) > MAX_KEY_LEN:
            errors.append(
                FieldError(f"{base}/device_uuid", "required", "must be a non-empty string", i)
            )
        kind: Any = raw.get("device_kind")
        if kind not in DEVICE_KINDS:
            errors.append(
                FieldError(
                    f"{base}/device_kind", "choice", f"must be one of {', '.join(DEVICE_KINDS)}", i
                )
            )
        method = raw.get("method")
        if method not in METHODS:
            errors.append(
                FieldError(f"{base}/method", "choice", f"must be one of {', '.join(METHODS)}", i)
            )
        energy: Any = raw.get("energy_j")
        if type(energy) not in (int, float):
            errors.append(FieldError(f"{base}/energy_j", "type", "must be a number (joules)", i))
        elif not 0 <= energy < _ENERGY_MAX_J:
            errors.append(
                FieldError(
                    f"{base}/energy_j", "range", f"must be finite and >= 0, got {energy!r}", i
                )
            )
        start = _parse_time(raw.get("start"))
        end = _parse_time(raw.get("end"))
        if isinstance(start, str):
            errors.append(FieldError(f"{base}/start", "time", start, i))
        if isinstance(end, str):
            errors.append(FieldError(f"{base}/end", "time", end, i))
        if isinstance(start, datetime) and isinstance(end, datetime):
            if end <= start:
                errors.append(FieldError(f"{base}/end", "order", "end must be after start", i))
            elif end - start > max_window:
                errors.append(
                    FieldError(
                        f"{base}/end",
                        "window_too_long",
                        f"window of {(end - start).total_seconds():.0f} s exceeds the maximum "
                        f"{limits.max_window_s:.0f} s",
                        i,
                    )
                )
            if end > latest:
                errors.append(
                    FieldError(
                        f"{base}/end",
                        "future_timestamp",
                        f"ends more than {limits.max_future_s:.0f} s after the server's clock; "
                        "check the host's clock (NTP)",
                        i,
                    )
                )
            if start < earliest:
                errors.append(
                    FieldError(
                        f"{base}/start",
                        "too_old",
                        f"starts before the horizon {earliest.isoformat()} (more than "
                        f"{limits.max_age_s / 86400:.0f} days ago): older windows are refused, and "
                        "raw windows past retention are no longer stored",
                        i,
                    )
                )
        values: dict[str, Any] = {}
        for name, low, high in _OPTIONAL_FLOATS:
            value = raw.get(name)
            if value is None:
                continue
            if type(value) not in (int, float) or not low <= value <= high:
                errors.append(
                    FieldError(f"{base}/{name}", "range", f"must be a number in [{low}, {high}]", i)
                )
            else:
                values[name] = float(value)
        for name in ("mem_used_bytes", "mem_total_bytes"):
            value = raw.get(name)
            if value is None:
                continue
            if type(value) is not int or not 0 <= value < _INT_MAX:
                errors.append(
                    FieldError(f"{base}/{name}", "type", "must be a non-negative integer", i)
                )
            else:
                values[name] = value
        idle = raw.get("idle_s")
        if idle is not None:
            if type(idle) not in (int, float) or not 0 <= idle <= limits.max_window_s:
                errors.append(
                    FieldError(f"{base}/idle_s", "range", "must be seconds within the window", i)
                )
            elif isinstance(start, datetime) and isinstance(end, datetime):
                if idle > (end - start).total_seconds() + 1e-6:
                    errors.append(
                        FieldError(
                            f"{base}/idle_s", "range", "idle time exceeds the window length", i
                        )
                    )
                values["idle_s"] = float(idle)
        shares_raw = raw.get("shares")
        shares: list[Share] = []
        if shares_raw is not None:
            shares = _parse_shares(shares_raw, energy, base, i, errors)
        if len(errors) > before:
            continue
        key = (uuid, cast(datetime, start))  # start parsed: no error was recorded
        if key in seen:
            errors.append(
                FieldError(
                    f"{base}/start",
                    "duplicate",
                    "another sample of this device starts at the same time",
                    i,
                )
            )
            continue
        seen.add(key)
        samples.append(
            Sample(
                device_uuid=uuid,
                device_kind=kind,
                start=start,  # type: ignore[arg-type]
                end=end,  # type: ignore[arg-type]
                energy_j=float(energy),
                method=method,  # type: ignore[arg-type]
                shares=shares,
                **values,
            )
        )
    return samples


def _fast_sample(
    raw: Any,
    windows: dict[tuple[str, str], tuple[datetime, datetime, float]],
    window_check: tuple[datetime, datetime, timedelta],
    max_idle_s: float,
) -> Sample | None:
    """The Sample for a raw sample that is valid in every respect, or None to take the full path.

    Same rules as the loop in _parse_samples, written as straight-line type and range tests with no
    error bookkeeping: ~4x cheaper per sample. It never rejects anything itself; None only means
    "let the exact path decide", so accepted batches and error reports are unchanged.
    """
    if type(raw) is not dict:
        return None
    get = raw.get
    uuid = get("device_uuid")
    if type(uuid) is not str or not uuid or len(uuid) > MAX_KEY_LEN:
        return None
    kind = get("device_kind")
    method = get("method")
    if kind not in DEVICE_KINDS or method not in METHODS:
        return None
    energy = get("energy_j")
    if (type(energy) is not float and type(energy) is not int) or not 0 <= energy < _ENERGY_MAX_J:
        return None
    start_s = get("start")
    end_s = get("end")
    if type(start_s) is not str or type(end_s) is not str:
        return None
    window = windows.get((start_s, end_s))
    if window is None:
        window = _fast_window(start_s, end_s, window_check)
        if window is None:
            return None
        windows[start_s, end_s] = window
    # Optional numbers, unrolled (see _OPTIONAL_FLOATS for the ranges).
    power_avg = get("power_avg_w")
    if power_avg is not None:
        if (type(power_avg) is not float and type(power_avg) is not int) or not (
            0.0 <= power_avg <= _POWER_MAX_W
        ):
            return None
        power_avg = float(power_avg)
    power_peak = get("power_peak_w")
    if power_peak is not None:
        if (type(power_peak) is not float and type(power_peak) is not int) or not (
            0.0 <= power_peak <= _POWER_MAX_W
        ):
            return None
        power_peak = float(power_peak)
    util_busy = get("util_busy")
    if util_busy is not None:
        if (type(util_busy) is not float and type(util_busy) is not int) or not (
            0.0 <= util_busy <= 1.0
        ):
            return None
        util_busy = float(util_busy)
    util_sm = get("util_sm")
    if util_sm is not None:
        if (type(util_sm) is not float and type(util_sm) is not int) or not 0.0 <= util_sm <= 1.0:
            return None
        util_sm = float(util_sm)
    temperature = get("temperature_c")
    if temperature is not None:
        if (type(temperature) is not float and type(temperature) is not int) or not (
            _TEMP_RANGE_C[0] <= temperature <= _TEMP_RANGE_C[1]
        ):
            return None
        temperature = float(temperature)
    mem_used = get("mem_used_bytes")
    if mem_used is not None and (type(mem_used) is not int or not 0 <= mem_used < _INT_MAX):
        return None
    mem_total = get("mem_total_bytes")
    if mem_total is not None and (type(mem_total) is not int or not 0 <= mem_total < _INT_MAX):
        return None
    idle = get("idle_s")
    if idle is not None:
        if (
            (type(idle) is not float and type(idle) is not int)
            or not 0 <= idle <= max_idle_s
            or idle > window[2] + 1e-6
        ):
            return None
        idle = float(idle)
    shares_raw = get("shares")
    shares: list[Share] = []
    if shares_raw is not None:
        parsed = _fast_shares(shares_raw, energy)
        if parsed is None:
            return None
        shares = parsed
    return Sample(
        uuid,
        kind,
        window[0],
        window[1],
        float(energy),
        method,
        power_avg,
        power_peak,
        util_busy,
        util_sm,
        mem_used,
        mem_total,
        temperature,
        idle,
        shares,
    )


def _fast_window(
    start_s: str, end_s: str, check: tuple[datetime, datetime, timedelta]
) -> tuple[datetime, datetime, float] | None:
    """(start, end, length in s) if the window passes every check of _parse_samples, else None."""
    start = _parse_time(start_s)
    end = _parse_time(end_s)
    if type(start) is str or type(end) is str:
        return None
    assert isinstance(start, datetime) and isinstance(end, datetime)
    latest, earliest, max_window = check
    if end <= start or end - start > max_window or end > latest or start < earliest:
        return None
    return start, end, (end - start).total_seconds()


def _fast_shares(raw: Any, energy: float) -> list[Share] | None:
    """The shares if every one is valid and they sum to the window's energy, else None."""
    if type(raw) is not list or len(raw) > MAX_SHARES:
        return None
    shares: list[Share] = []
    total = 0.0
    for item in raw:
        if type(item) is not dict:
            return None
        get = item.get
        share_energy = get("energy_j")
        if (
            type(share_energy) is not float and type(share_energy) is not int
        ) or not 0 <= share_energy < _ENERGY_MAX_J:
            return None
        method = get("method", "declared")
        if method not in SHARE_METHODS:
            return None
        pid = get("pid")
        if pid is not None and (type(pid) is not int or not 0 <= pid < PID_MAX):
            return None
        tags = get("tags") or {}
        if type(tags) is not dict or len(tags) > MAX_TAGS:
            return None
        for k, v in tags.items():
            if type(k) is not str or type(v) is not str or len(k) > 100 or len(v) > MAX_KEY_LEN:
                return None
        team = get("team")
        if team is not None and (type(team) is not str or not team or len(team) > MAX_KEY_LEN):
            return None
        model = get("model")
        if model is not None and (type(model) is not str or not model or len(model) > MAX_KEY_LEN):
            return None
        run = get("run")
        if run is not None and (type(run) is not str or not run or len(run) > MAX_KEY_LEN):
            return None
        scheduler = None
        scheduler_raw = get("scheduler")
        if scheduler_raw is not None:
            problems: list[FieldError] = []
            scheduler = _parse_scheduler(scheduler_raw, "", problems, 0)
            if problems:
                return None
        elif method == "allocated-idle":
            return None
        share_energy = float(share_energy)
        total += share_energy
        shares.append(Share(share_energy, method, team, model, run, pid, tags, scheduler))
    if shares and abs(total - energy) > max(1e-6 * energy, 1e-3):
        return None
    return shares


def _parse_shares(
    raw: Any, energy: Any, base: str, i: int, errors: list[FieldError]
) -> list[Share]:
    if not isinstance(raw, list) or len(raw) > MAX_SHARES:
        errors.append(
            FieldError(
                f"{base}/shares", "type", f"must be a list of at most {MAX_SHARES} shares", i
            )
        )
        return []
    shares: list[Share] = []
    total = 0.0
    for j, item in enumerate(raw):
        pointer = f"{base}/shares/{j}"
        if not isinstance(item, dict):
            errors.append(FieldError(pointer, "type", "a share must be an object", i))
            continue
        share_energy: Any = item.get("energy_j")
        if type(share_energy) not in (int, float) or not 0 <= share_energy < _ENERGY_MAX_J:
            errors.append(
                FieldError(f"{pointer}/energy_j", "range", "must be a finite number >= 0", i)
            )
            continue
        method = item.get("method", "declared")
        if method not in SHARE_METHODS:
            errors.append(
                FieldError(
                    f"{pointer}/method", "choice", f"must be one of {', '.join(SHARE_METHODS)}", i
                )
            )
            continue
        pid = item.get("pid")
        if pid is not None and (type(pid) is not int or not 0 <= pid < PID_MAX):
            errors.append(
                FieldError(f"{pointer}/pid", "type", "must be a process id (0 <= pid < 2**31)", i)
            )
            continue
        tags = item.get("tags") or {}
        if (
            not isinstance(tags, dict)
            or len(tags) > MAX_TAGS
            or not all(
                type(k) is str and type(v) is str and len(k) <= 100 and len(v) <= MAX_KEY_LEN
                for k, v in tags.items()
            )
        ):
            errors.append(
                FieldError(
                    f"{pointer}/tags", "type", f"must map at most {MAX_TAGS} strings to strings", i
                )
            )
            continue
        scheduler = None
        if item.get("scheduler") is not None:
            scheduler = _parse_scheduler(item["scheduler"], f"{pointer}/scheduler", errors, i)
        elif method == "allocated-idle":
            errors.append(
                FieldError(
                    f"{pointer}/scheduler",
                    "required",
                    "an allocated-idle share names the job the GPU was allocated to",
                    i,
                )
            )
        share = Share(
            energy_j=float(share_energy),
            method=method,
            team=_key(item.get("team"), f"{pointer}/team", errors, i),
            model=_key(item.get("model"), f"{pointer}/model", errors, i),
            run=_key(item.get("run"), f"{pointer}/run", errors, i),
            pid=pid,
            tags=tags,
            scheduler=scheduler,
        )
        total += share.energy_j
        shares.append(share)
    if shares and type(energy) in (int, float) and abs(total - energy) > max(1e-6 * energy, 1e-3):
        errors.append(
            FieldError(
                f"{base}/shares",
                "sum",
                f"shares sum to {total:.6g} J but the window has {energy:.6g} J",
                i,
            )
        )
    return shares


def _parse_scheduler(raw: Any, pointer: str, errors: list[FieldError], i: int) -> Scheduler | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(pointer, "type", "scheduler must be an object", i))
        return None
    kind = raw.get("kind")
    if kind not in SCHEDULER_KINDS:
        errors.append(
            FieldError(
                f"{pointer}/kind", "choice", f"must be one of {', '.join(SCHEDULER_KINDS)}", i
            )
        )
        return None
    if kind == "k8s":
        return _parse_k8s(raw, pointer, errors, i)
    before = len(errors)
    texts: dict[str, str | None] = {}
    for name, limit in SLURM_TEXT_LIMITS.items():
        value = raw.get(name)
        if value is None:
            if name == "cluster":
                errors.append(
                    FieldError(f"{pointer}/cluster", "required", "cluster is required", i)
                )
            texts[name] = None
        elif type(value) is not str or not value or len(value) > limit:
            errors.append(
                FieldError(
                    f"{pointer}/{name}",
                    "type",
                    f"must be a non-empty string of at most {limit} characters",
                    i,
                )
            )
        else:
            texts[name] = value
    job_id = raw.get("job_id")
    if job_id is None:
        errors.append(FieldError(f"{pointer}/job_id", "required", "job_id is required", i))
    elif type(job_id) is not str or _SLURM_JOB_ID.search(job_id) is None:
        errors.append(
            FieldError(
                f"{pointer}/job_id",
                "format",
                'must be a Slurm job id: "1234", array task "1234_7" or het component "1234+1"',
                i,
            )
        )
    ids: dict[str, int | None] = {}
    for name in SLURM_ID_FIELDS:
        value = raw.get(name)
        if value is not None and (type(value) is not int or not 0 <= value < _UINT32):
            errors.append(
                FieldError(f"{pointer}/{name}", "type", "must be an integer in [0, 2**32)", i)
            )
        ids[name] = value
    times: dict[str, datetime | None] = {}
    for name in ("start", "end"):
        value = raw.get(name)
        if value is None:
            times[name] = None
            continue
        moment = _parse_time(value)
        if isinstance(moment, str):
            errors.append(FieldError(f"{pointer}/{name}", "time", moment, i))
        else:
            times[name] = moment
    complete = raw.get("complete", True)
    if type(complete) is not bool:
        errors.append(FieldError(f"{pointer}/complete", "type", "must be true or false", i))
    if len(errors) > before:
        return None
    job = SlurmJob(
        cluster=cast(str, texts["cluster"]),
        job_id=cast(str, job_id),
        array_job_id=ids["array_job_id"],
        array_task_id=ids["array_task_id"],
        het_job_id=ids["het_job_id"],
        het_job_offset=ids["het_job_offset"],
        user=texts["user"],
        account=texts["account"],
        partition=texts["partition"],
        qos=texts["qos"],
        job_name=texts["job_name"],
        comment=texts["comment"],
        nodes=texts["nodes"],
        start=times["start"],
        end=times["end"],
        complete=complete,
    )
    problem = scheduler_problem(job)
    if problem is not None:
        errors.append(FieldError(f"{pointer}/{problem[0]}", problem[1], problem[2], i))
        return None
    return job


def _string_map(
    raw: Any, pointer: str, errors: list[FieldError], i: int, most: int, value_len: int
) -> dict[str, str]:
    if raw is None:
        return {}
    if (
        not isinstance(raw, dict)
        or len(raw) > most
        or not all(
            type(k) is str
            and type(v) is str
            and 0 < len(k) <= K8S_LABEL_KEY_LEN
            and len(v) <= value_len
            for k, v in raw.items()
        )
    ):
        errors.append(
            FieldError(
                pointer,
                "type",
                f"must map at most {most} keys (1..{K8S_LABEL_KEY_LEN} characters) to strings "
                f"of at most {value_len} characters",
                i,
            )
        )
        return {}
    return raw


def _parse_k8s(
    raw: dict[str, Any], pointer: str, errors: list[FieldError], i: int
) -> K8sPod | None:
    before = len(errors)
    names: dict[str, str] = {}
    for name, regex, what in (
        ("namespace", _K8S_NAMESPACE, "a Kubernetes namespace (RFC 1123 label, <= 63)"),
        ("pod", _K8S_POD, "a Kubernetes pod name (RFC 1123 subdomain, <= 253)"),
    ):
        value = raw.get(name)
        if value is None:
            errors.append(FieldError(f"{pointer}/{name}", "required", f"{name} is required", i))
        elif type(value) is not str or regex.search(value) is None:
            errors.append(FieldError(f"{pointer}/{name}", "format", f"must be {what}", i))
        else:
            names[name] = value
    texts: dict[str, str | None] = {}
    for name, limit in K8S_TEXT_LIMITS.items():
        value = raw.get(name)
        if value is not None and (type(value) is not str or not value or len(value) > limit):
            errors.append(
                FieldError(
                    f"{pointer}/{name}",
                    "type",
                    f"must be a non-empty string of at most {limit} characters",
                    i,
                )
            )
        texts[name] = value
    labels = _string_map(
        raw.get("labels"), f"{pointer}/labels", errors, i, K8S_MAX_LABELS, K8S_LABEL_VALUE_LEN
    )
    annotations = _string_map(
        raw.get("annotations"),
        f"{pointer}/annotations",
        errors,
        i,
        K8S_MAX_ANNOTATIONS,
        K8S_ANNOTATION_VALUE_LEN,
    )
    times: dict[str, datetime | None] = {}
    for name in ("start", "end"):
        value = raw.get(name)
        times[name] = None
        if value is not None:
            moment = _parse_time(value)
            if isinstance(moment, str):
                errors.append(FieldError(f"{pointer}/{name}", "time", moment, i))
            else:
                times[name] = moment
    complete = raw.get("complete", True)
    if type(complete) is not bool:
        errors.append(FieldError(f"{pointer}/complete", "type", "must be true or false", i))
    if len(errors) > before:
        return None
    pod = K8sPod(
        namespace=names["namespace"],
        pod=names["pod"],
        cluster=texts["cluster"],
        container=texts["container"],
        uid=texts["uid"],
        labels=labels,
        annotations=annotations,
        start=times["start"],
        end=times["end"],
        complete=complete,
    )
    problem = scheduler_problem(pod)
    if problem is not None:
        errors.append(FieldError(f"{pointer}/{problem[0]}", problem[1], problem[2], i))
        return None
    return pod


def k8s_run_key(pod: Any) -> str:
    """The run a pod's shares belong to: its ``greenkpi.io/run`` label or annotation (label first),
    else ``k8s:<namespace>/<pod>`` (``k8s:<cluster>:<namespace>/<pod>`` when the cluster is known,
    like Slurm's ``slurm:<cluster>:<job id>``)."""
    named = pod.labels.get(K8S_RUN_LABEL) or pod.annotations.get(K8S_RUN_LABEL)
    if named:
        return cast(str, named)[:MAX_KEY_LEN]
    where = f"{pod.cluster}:" if pod.cluster else ""
    key = f"k8s:{where}{pod.namespace}/{pod.pod}"
    if len(key) > MAX_KEY_LEN:
        # a run key is <= 200 characters; a longer name keeps its start and a digest of the whole
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = f"{key[: MAX_KEY_LEN - 17]}~{digest}"
    return key


def scheduler_problem(job: Any) -> tuple[str, str, str] | None:
    """(field, code, message) if a well-typed SlurmJob contradicts itself, else None.

    Shared by v1 and fast_v1 so both refuse exactly the same jobs: the canonical job id and the
    array / het fields must say the same thing, and a job cannot end before it starts.
    """
    if job.kind == "k8s":
        if job.start is not None and job.end is not None and job.end < job.start:
            return ("end", "order", "a pod cannot end before it starts")
        return None
    job_id: str = job.job_id
    array = (job.array_job_id, job.array_task_id)
    het = (job.het_job_id, job.het_job_offset)
    if "_" in job_id:
        expected_array: tuple[int | None, int | None] = tuple(  # type: ignore[assignment]
            int(part) for part in job_id.split("_")
        )
        if array != expected_array or het != (None, None):
            return (
                "job_id",
                "consistency",
                "an array task id A_T needs array_job_id A and array_task_id T (and no het fields)",
            )
    elif "+" in job_id:
        expected_het: tuple[int | None, int | None] = tuple(  # type: ignore[assignment]
            int(part) for part in job_id.split("+")
        )
        if het != expected_het or array != (None, None):
            return (
                "job_id",
                "consistency",
                "a het component id J+O needs het_job_id J and het_job_offset O (and no array fields)",
            )
    elif array != (None, None) or het != (None, None):
        return (
            "job_id",
            "consistency",
            "array and het fields need a job_id of the form A_T or J+O",
        )
    if job.start is not None and job.end is not None and job.end < job.start:
        return ("end", "order", "a job cannot end before it starts")
    return None


def scheduler_to_json(job: Any) -> dict[str, Any]:
    """The wire form of a SlurmJob or K8sPod (v1 dataclass or fast_v1 struct): known fields only."""
    if job.kind == "k8s":
        pod: dict[str, Any] = {"kind": "k8s", "namespace": job.namespace, "pod": job.pod}
        for name in (*K8S_TEXT_LIMITS, "labels", "annotations"):
            value = getattr(job, name)
            if value:
                pod[name] = value
        for name in ("start", "end"):
            moment = getattr(job, name)
            if moment is not None:
                pod[name] = format_time(moment)
        if not job.complete:
            pod["complete"] = False
        return pod
    out: dict[str, Any] = {"kind": job.kind, "cluster": job.cluster, "job_id": job.job_id}
    for name in (*SLURM_ID_FIELDS, *SLURM_TEXT_LIMITS):
        value = getattr(job, name)
        if value is not None:
            out[name] = value
    for name in ("start", "end"):
        moment = getattr(job, name)
        if moment is not None:
            out[name] = format_time(moment)
    if not job.complete:
        out["complete"] = False
    return out


def batch_to_json(batch: Batch) -> dict[str, Any]:
    """The wire form of a Batch (what a collector posts); inverse of parse_batch."""
    host = batch.host
    out_host: dict[str, Any] = {
        "hostname": host.hostname,
        "agent_version": host.agent_version,
        "site": host.site,
        "clock": format_time(host.clock) if host.clock else None,
        "spool_depth": host.spool_depth,
        "dropped_windows": host.dropped_windows,
        "source_errors": host.source_errors,
        "devices": [
            {"uuid": d.uuid, "kind": d.kind, "model": d.model, "power_limit_w": d.power_limit_w}
            for d in host.devices
        ],
    }
    return {
        "schema_version": batch.schema_version,
        "host": {k: v for k, v in out_host.items() if v is not None},
        "samples": [sample_to_json(s) for s in batch.samples],
    }


# A sample's optional measurements, in wire order (omitted from the JSON when None).
OPTIONAL_MEASUREMENTS = (
    "power_avg_w",
    "power_peak_w",
    "util_busy",
    "util_sm",
    "mem_used_bytes",
    "mem_total_bytes",
    "temperature_c",
    "idle_s",
)


def sample_to_json(sample: Sample) -> dict[str, Any]:
    out: dict[str, Any] = {
        "device_uuid": sample.device_uuid,
        "device_kind": sample.device_kind,
        "start": format_time(sample.start),
        "end": format_time(sample.end),
        "energy_j": sample.energy_j,
        "method": sample.method,
    }
    for name in OPTIONAL_MEASUREMENTS:
        value = getattr(sample, name)
        if value is not None:
            out[name] = value
    if sample.shares:
        out["shares"] = [
            {
                k: v
                for k, v in (
                    ("energy_j", s.energy_j),
                    ("method", s.method),
                    ("team", s.team),
                    ("model", s.model),
                    ("run", s.run),
                    ("pid", s.pid),
                    ("tags", s.tags or None),
                    ("scheduler", scheduler_to_json(s.scheduler) if s.scheduler else None),
                )
                if v is not None
            }
            for s in sample.shares
        ]
    return out
