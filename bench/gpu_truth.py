"""Real-GPU truth (issue 19): the collector's own NVML source, sampler and windows, measured
against the GPU's energy counter, sampled power and a known load, in one command.

    python3 bench/gpu_truth.py                      # on a GPU machine: about 5 minutes
    python3 bench/gpu_truth.py --simulated --phase-scale 0.05   # here: the simulated NVML, ~20 s

What runs: a collector child process (``Sampler`` + ``NvmlSource`` + ``DeviceWindow`` exactly as
``greenkpi-collector run`` builds them, windows kept in the real SQLite spool, no backend) at 1 Hz
with 10 s windows, while two load processes (bf16 matmul loops in PyTorch) drive one GPU through
phases: idle 30 s, full load 60 s, half duty cycle 60 s (0.5 s busy / 0.5 s idle), both processes
sharing the GPU 60 s (A full, B half duty), idle 30 s. Independently this process reads
``nvmlDeviceGetTotalEnergyConsumption`` every second and at each phase boundary, and
``nvidia-smi --query-gpu=power.draw`` once a second. The last lines printed are ``key: value``.

On the GPU machine only python3 with PyTorch, nvidia-ml-py and psutil is needed: the collector
is imported from this checkout (this file puts ``collectors/`` and the repository root on
``sys.path``; no msgspec/orjson/Django on that path). ``--simulated`` replaces the GPU by the
collector's simulated NVML driven per phase (no torch), and ``--phase-scale`` shrinks every
duration (phases, sampling interval, windows, duty period) so a test can run it in seconds.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime as _dt
import itertools
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "collectors")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# The GPU machine's python may be older than the project's 3.11; datetime.UTC is the only newer
# name on the collector's sampling path.
_dt.__dict__.setdefault("UTC", _dt.timezone(_dt.timedelta(0)))

INTERVAL_S = 1.0  # the collector's default sampling interval
WINDOW_S = 10.0  # short windows, so every phase holds several
DUTY_PERIOD_S = 1.0  # half duty = 0.5 s busy / 0.5 s idle
IDLE_W, FULL_W = 70.0, 700.0  # the simulated GPU: an H100 SXM's idle draw and its power limit
TEAMS = ("proc-a", "proc-b")
# Children run like this process (``python -S`` in the test that proves no site-packages but
# nvidia-ml-py and psutil are needed).
PYTHON = [sys.executable, *(["-S"] if sys.flags.no_site else [])]


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    duty_a: float  # fraction of each duty period process A keeps the GPU busy
    duty_b: float
    idle: bool  # by the collector's definition: every 1 s interval below 5 % busy


PHASES = (
    Phase("idle", 30, 0.0, 0.0, True),
    Phase("full", 60, 1.0, 0.0, False),
    Phase("half_duty", 60, 0.5, 0.0, False),
    Phase("shared", 60, 1.0, 0.5, False),
    Phase("idle_end", 30, 0.0, 0.0, True),
)


def phase_times(t0: float, scale: float) -> list[tuple[Phase, float, float]]:
    out, t = [], t0
    for p in PHASES:
        out.append((p, t, t + p.seconds * scale))
        t += p.seconds * scale
    return out


# --- the simulated GPU, driven per phase ----------------------------------------------------------


def sim_utils(phase: Phase) -> tuple[float, float]:
    """Per-process SM utilization % the simulated driver reports in a phase. When both run, B is
    busy half of each period and time-slicing then halves A: A 75 %, B 25 %."""
    if phase.duty_a and phase.duty_b:
        return 100 * (1 - phase.duty_b / 2), 100 * phase.duty_b / 2
    return 100 * phase.duty_a, 100 * phase.duty_b


def build_sim(plan: dict[str, Any]) -> Any:
    """The simulated NVML over one GPU whose busy level follows the phases of ``plan``; the parent
    and the collector child build it from the same plan, so they see the same counter."""
    from greenkpi_collector.sources.sim import SIM_EPOCH, SimGpu, SimulatedNvml

    scale, t0 = float(plan["scale"]), float(plan["t0"])
    segments: list[tuple[float, float]] = []  # (start, end) of full-busy spans
    for phase, start, end in phase_times(t0, scale):
        if phase.duty_a >= 1 or phase.duty_b >= 1:
            segments.append((start, end))
        elif phase.duty_a or phase.duty_b:
            period, duty = DUTY_PERIOD_S * scale, max(phase.duty_a, phase.duty_b)
            k = 0
            while start + k * period < end - 1e-9:
                s = start + k * period
                segments.append((s, min(end, s + duty * period)))
                k += 1
    ends = [e for _, e in segments]
    cumulative = [0.0]
    for s, e in segments:
        cumulative.append(cumulative[-1] + (e - s))

    def busy_s(t: float) -> float:
        """Busy seconds from the epoch to t (exact)."""
        i = bisect.bisect_left(ends, t)  # segments before i ended before t
        out = cumulative[i]
        if i < len(segments) and segments[i][0] < t:
            out += t - segments[i][0]
        return out

    class PhasedGpu(SimGpu):
        def energy_j(self, t: float) -> float:
            return self.base_w * (t - SIM_EPOCH) + self.amp_w * busy_s(t)

        def power_w(self, t: float) -> float:
            # Like NVML on Ampere and newer: the mean over the last second, so utilization (which
            # the simulator derives from power) is the busy fraction of the last sample period.
            avg = DUTY_PERIOD_S * scale
            return (self.energy_j(t) - self.energy_j(t - avg)) / avg

    gpu = PhasedGpu(
        uuid="GPU-truth-sim-0", name="Simulated H100", base_w=IDLE_W, amp_w=FULL_W - IDLE_W
    )
    pids = [int(p) for p in plan["pids"]]
    spans = phase_times(t0, scale)

    def refresh(gpus: list[Any]) -> None:
        now = time.time()
        current = next((p for p, s, e in spans if s <= now < e), None)
        ua, ub = sim_utils(current) if current else (0.0, 0.0)
        gpus[0].processes = [(pids[0], ua), (pids[1], ub)]

    return SimulatedNvml([gpu], refresh=refresh)


# --- the collector child: the production sampling path --------------------------------------------


def collector_child(args: argparse.Namespace) -> int:
    from greenkpi_collector.attribution import Registry
    from greenkpi_collector.sampler import Sampler
    from greenkpi_collector.sources.nvml import NvmlSource, load_pynvml
    from greenkpi_collector.spool import Spool

    plan = json.loads(Path(args.plan).read_text()) if args.plan else None
    source = NvmlSource(build_sim(plan) if plan else load_pynvml())
    spool = Spool(Path(args.state) / "spool.sqlite3")
    sampler = Sampler(
        sources=[source],
        spool=spool,
        registry=Registry(Path(args.registry)),
        host_load=None,
        interval_s=args.interval,
        window_s=args.window,
        max_resume_gap_s=0,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Tick just after whole intervals, so windows close right after the phase boundaries.
    time.sleep(args.interval - time.time() % args.interval + 0.02 * args.interval)
    print("ready", flush=True)
    sampler.run(stop)  # the collector's own loop; on stop it spools the last partial window
    spool.close()
    source.close()
    return 0


# --- the load generator (real GPU only) ----------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    """A bf16 matmul loop; stdin lines ``<phase> <duty> <period_s>`` change its load, each answer
    on stdout is the previous phase's busy seconds and FLOPs (its own view of the work done)."""
    import torch

    n = args.matrix
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty_like(a)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    per = (time.perf_counter() - t) / 10
    chunk = max(1, int(0.01 / per))  # synchronize about every 10 ms
    print(
        json.dumps(
            {
                "ready": os.getpid(),
                "device": torch.cuda.get_device_name(0),
                "torch": torch.__version__,
                "matmul_ms": round(per * 1000, 3),
            }
        ),
        flush=True,
    )
    command: list[Any] = ["warmup", 0.0, 1.0]
    changed = threading.Event()

    def read_commands() -> None:
        for line in sys.stdin:
            name, duty, period = line.split()
            command[:] = [name, float(duty), float(period)]
            changed.set()
        command[:] = ["quit", 0.0, 1.0]
        changed.set()

    threading.Thread(target=read_commands, daemon=True).start()
    stats = {"phase": "warmup", "busy_s": 0.0, "flop": 0.0, "started": time.time()}
    while True:
        if changed.is_set():
            changed.clear()
            stats["wall_s"] = time.time() - stats.pop("started")
            print(json.dumps(stats), flush=True)
            name, duty, period = command
            if name == "quit":
                return 0
            stats = {"phase": name, "busy_s": 0.0, "flop": 0.0, "started": time.time()}
        name, duty, period = command
        now = time.time()
        into = now % period
        if duty <= 0 or into >= duty * period:
            changed.wait(min(0.01, period - into) if duty > 0 else 0.05)
            continue
        until = now - into + duty * period
        t = time.perf_counter()
        while time.time() < until and not changed.is_set():
            for _ in range(chunk):
                torch.matmul(a, b, out=c)
            torch.cuda.synchronize()
            stats["flop"] += chunk * 2.0 * n**3
        stats["busy_s"] += time.perf_counter() - t


# --- the parent: truth readings -------------------------------------------------------------------


@dataclass
class Truth:
    counter: list[tuple[float, float]] = field(default_factory=list)  # (wall, joules)
    power: list[tuple[float, float]] = field(default_factory=list)  # (wall, watts)
    power_source: str = ""
    proc_util: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # pid: (t, %)
    boundaries: list[tuple[float, float]] = field(default_factory=list)
    nvml_pids: set[int] = field(default_factory=set)
    nvml_power: list[tuple[float, float]] = field(default_factory=list)  # (wall, watts)
    exact: Callable[[float], float] | None = None  # the simulator's counter (J) at any time


class Monitor:
    """Reads the energy counter, power and per-process utilization every interval, and nvidia-smi
    power.draw once a second where nvidia-smi exists."""

    def __init__(self, api: Any, handle: Any, index: int, interval: float, smi: bool) -> None:
        self.api, self.handle, self.interval = api, handle, interval
        self.truth = Truth()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.last_proc_us = 0
        self.smi: subprocess.Popen[str] | None = None
        exe = shutil.which("nvidia-smi") if smi else None
        if exe:
            query = ["--query-gpu=power.draw", "--format=csv,noheader,nounits", "-lms", "1000"]
            self.smi = subprocess.Popen(
                [exe, *query, "-i", str(index)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self.truth.power_source = "nvidia-smi power.draw, 1 Hz"
            threading.Thread(target=self._smi_lines, daemon=True).start()
        elif smi:
            self.truth.power_source = "not found"
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def counter_j(self) -> float:
        t = time.time()
        value = self.api.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        with self.lock:
            self.truth.counter.append((t, value))
        return value

    def _smi_lines(self) -> None:
        assert self.smi is not None and self.smi.stdout is not None
        for line in self.smi.stdout:
            with contextlib.suppress(ValueError):
                watts = float(line.strip())
                with self.lock:
                    self.truth.power.append((time.time(), watts))

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self.stop.is_set():
            self.counter_j()
            now = time.time()
            with contextlib.suppress(self.api.NVMLError):
                watts = self.api.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
                with self.lock:
                    self.truth.nvml_power.append((now, watts))
            with contextlib.suppress(self.api.NVMLError):  # the PIDs NVML sees on this GPU
                for proc in self.api.nvmlDeviceGetComputeRunningProcesses(self.handle):
                    self.truth.nvml_pids.add(int(proc.pid))
            try:
                samples = self.api.nvmlDeviceGetProcessUtilization(self.handle, self.last_proc_us)
            except self.api.NVMLError:
                samples = []  # NotFound: nothing newer
            for s in samples:
                if int(s.timeStamp) > self.last_proc_us:
                    self.truth.proc_util.setdefault(int(s.pid), []).append((now, float(s.smUtil)))
            if samples:
                self.last_proc_us = max(self.last_proc_us, *(int(s.timeStamp) for s in samples))
            next_t += self.interval
            self.stop.wait(max(0.0, next_t - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.counter_j()
        if self.smi is not None:
            self.smi.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.smi.wait(timeout=5)


def interp(series: list[tuple[float, float]], t: float) -> float:
    """Linear interpolation of a sorted (t, value) series at t (clamped at the ends)."""
    times = [s[0] for s in series]
    i = bisect.bisect_left(times, t)
    if i == 0:
        return series[0][1]
    if i >= len(series):
        return series[-1][1]
    (t1, v1), (t2, v2) = series[i - 1], series[i]
    return v1 + (v2 - v1) * (t - t1) / (t2 - t1) if t2 > t1 else v2


def integrate(series: list[tuple[float, float]], a: float, b: float) -> float:
    """Trapezoid integral of a sampled series over [a, b], edges interpolated."""
    if not series:
        return math.nan
    inner = [(t, v) for t, v in series if a < t < b]
    points = [(a, interp(series, a)), *inner, (b, interp(series, b))]
    return sum((t2 - t1) * (v1 + v2) / 2 for (t1, v1), (t2, v2) in itertools.pairwise(points))


def pct(value: float, reference: float) -> float:
    return 100.0 * (value - reference) / reference if reference else math.nan


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- orchestration --------------------------------------------------------------------------------


class Load:
    """The two load processes: real PyTorch workers, or idle stand-ins with real PIDs (so the
    registry can claim them) whose load the simulated driver plays instead."""

    def __init__(self, simulated: bool, uuid: str, matrix: int) -> None:
        self.simulated = simulated
        self.procs: list[subprocess.Popen[str]] = []
        self.info: list[dict[str, Any]] = []
        self.stats: list[list[dict[str, Any]]] = [[], []]
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=uuid, PYTHONUNBUFFERED="1")
        for _ in range(2):
            cmd = (
                [*PYTHON, "-c", "import sys; sys.stdin.read()"]
                if simulated
                else [*PYTHON, __file__, "_worker", "--matrix", str(matrix)]
            )
            self.procs.append(
                subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
                )
            )
        if simulated:
            self.info = [{"ready": p.pid} for p in self.procs]
            return
        for i, proc in enumerate(self.procs):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"load process {i} died before it was ready (see stderr)")
            self.info.append(json.loads(line))
            threading.Thread(target=self._read, args=(i,), daemon=True).start()

    def _read(self, i: int) -> None:
        out = self.procs[i].stdout
        assert out is not None
        for line in out:
            with contextlib.suppress(ValueError):
                self.stats[i].append(json.loads(line))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def command(self, phase: Phase, scale: float) -> None:
        if self.simulated:
            return
        for proc, duty in zip(self.procs, (phase.duty_a, phase.duty_b), strict=True):
            assert proc.stdin is not None
            proc.stdin.write(f"{phase.name} {duty} {DUTY_PERIOD_S * scale}\n")
            proc.stdin.flush()

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()  # EOF: the worker reports its last phase and exits
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def open_nvml(args: argparse.Namespace, plan: dict[str, Any] | None) -> Any:
    if plan is not None:
        api = build_sim(plan)
    else:
        import pynvml

        api = pynvml
    api.nvmlInit()
    return api


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="role")
    child = sub.add_parser("_collector")
    child.add_argument("--state", required=True)
    child.add_argument("--registry", required=True)
    child.add_argument("--interval", type=float, required=True)
    child.add_argument("--window", type=float, required=True)
    child.add_argument("--plan")
    wk = sub.add_parser("_worker")
    wk.add_argument("--matrix", type=int, default=8192)
    ap.add_argument("--simulated", action="store_true", help="the simulated NVML, no GPU/torch")
    ap.add_argument("--phase-scale", type=float, default=1.0, help="multiply every duration")
    ap.add_argument("--gpu-index", type=int, default=0)
    ap.add_argument("--matrix", type=int, default=8192, help="bf16 matmul size (real GPU)")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args(argv)
    if args.role == "_collector":
        return collector_child(args)
    if args.role == "_worker":
        return worker(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    scale = args.phase_scale
    interval, window = INTERVAL_S * scale, WINDOW_S * scale
    work = Path(tempfile.mkdtemp(prefix="gpu-truth-"))
    registry = work / "registry"
    from greenkpi_collector.attribution import register, registration

    # 1. The GPU and its two load processes (ready before any timing starts).
    if args.simulated:
        load = Load(True, "", args.matrix)
        plan: dict[str, Any] | None = {"scale": scale, "t0": 0.0, "pids": load.pids}
        uuid, index = "GPU-truth-sim-0", 0
    else:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(args.gpu_index)
        uuid = pynvml.nvmlDeviceGetUUID(h)
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        index, plan = args.gpu_index, None
        print(f"starting two load processes on {uuid} (import torch, warm up) ...", flush=True)
        load = Load(False, uuid, args.matrix)
    for team, pid in zip(TEAMS, load.pids, strict=True):
        register(registry, registration(pid=pid, team=team, model="gpu-truth"))

    # 2. The timeline starts at a window boundary far enough ahead for the collector to start.
    lead = max(4.0, 2 * window)
    t0 = math.ceil((time.time() + lead) / window) * window
    if plan is not None:
        plan["t0"] = t0
        (work / "plan.json").write_text(json.dumps(plan))
    api = open_nvml(args, plan)
    handle = api.nvmlDeviceGetHandleByIndex(index)
    name = api.nvmlDeviceGetName(handle)
    gpu_name = name.decode() if isinstance(name, bytes) else str(name)
    driver = api.nvmlSystemGetDriverVersion()
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    monitor = Monitor(api, handle, index, interval, smi=not args.simulated)
    if plan is not None:
        monitor.truth.exact = lambda t: api.gpus[0].counter_mj(t) / 1000.0
    monitor.thread.start()
    cmd = [*PYTHON, __file__, "_collector", "--state", str(work), "--registry"]
    cmd += [str(registry), "--interval", str(interval), "--window", str(window)]
    if plan is not None:
        cmd += ["--plan", str(work / "plan.json")]
    collector = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert collector.stdout is not None
    if collector.stdout.readline().strip() != "ready" or time.time() > t0 - interval:
        collector.kill()
        raise SystemExit("the collector did not start in time (see stderr)")
    import psutil

    handle_ps = psutil.Process(collector.pid)

    # 3. The phases, with the counter read at every boundary.
    spans = phase_times(t0, scale)
    time.sleep(max(0.0, t0 - time.time()))
    cpu0, wall0 = handle_ps.cpu_times(), time.monotonic()
    for phase, _start, end in spans:
        load.command(phase, scale)
        monitor.truth.boundaries.append((time.time(), monitor.counter_j()))
        time.sleep(max(0.0, end - time.time()))
    monitor.truth.boundaries.append((time.time(), monitor.counter_j()))
    cpu1, wall1 = handle_ps.cpu_times(), time.monotonic()
    rss_mb = handle_ps.memory_info().rss / 2**20
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=30)
    load.command(Phase("end", 0, 0.0, 0.0, True), scale)
    load.close()
    monitor.close()

    # 4. What the collector spooled, for this GPU.
    db = sqlite3.connect(str(work / "spool.sqlite3"))
    samples = [json.loads(b) for (b,) in db.execute("SELECT body FROM windows ORDER BY id")]
    db.close()
    samples = [s for s in samples if s["device_uuid"] == uuid]
    shutil.rmtree(work, ignore_errors=True)
    if not samples:
        raise SystemExit("the collector spooled no window for this GPU")
    figures = report(
        samples=samples,
        truth=monitor.truth,
        spans=spans,
        load=load,
        scale=scale,
        gpu=f"{gpu_name} ({uuid})",
        driver=driver,
        cpu_percent=100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (wall1 - wall0),
        rss_mb=rss_mb,
        simulated=args.simulated,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def report(
    *,
    samples: list[dict[str, Any]],
    truth: Truth,
    spans: list[tuple[Phase, float, float]],
    load: Load,
    scale: float,
    gpu: str,
    driver: str,
    cpu_percent: float,
    rss_mb: float,
    simulated: bool,
) -> dict[str, Any]:
    truth.counter.sort()
    if len(truth.power) < 2:  # no nvidia-smi, or it printed [N/A]: NVML's power reading instead
        truth.power_source = "nvmlDeviceGetPowerUsage each interval" + (
            f" (nvidia-smi: {len(truth.power)} readings)" if truth.power_source else ""
        )
        truth.power = truth.nvml_power
    truth.power.sort()
    for s in samples:
        s["t0"], s["t1"] = _when(s["start"]), _when(s["end"])
    first, last = samples[0]["t0"], samples[-1]["t1"]
    collector_j = sum(s["energy_j"] for s in samples)
    counter_j = interp(truth.counter, last) - interp(truth.counter, first)
    power_j = integrate(truth.power, first, last)

    def phase_of(s: dict[str, Any]) -> Phase | None:
        mid = (s["t0"] + s["t1"]) / 2
        return next((p for p, a, b in spans if a <= mid < b), None)

    print(
        f"collector windows: {len(samples)} over {last - first:.1f} s; power: {truth.power_source}"
    )

    def counter_at(t: float) -> float:
        # The simulator's counter is known at any instant; a real one between 1 s reads is
        # interpolated (exact in steady phases, within a quarter second of a power step).
        return truth.exact(t) if truth.exact else interp(truth.counter, t)

    print(
        f"{'phase':<10} {'s':>6} {'counter_J':>10} {'late_ms':>7} {'collector_J':>11} "
        f"{'counter_win_J':>13} {'diff_%':>7} {'power_int_J':>11} {'mean_W':>7} "
        f"{'idle_s':>7} {'idle_true_s':>11}"
    )
    rows = []
    for (phase, a, b), ((ta, ca), (tb, cb)) in zip(
        spans, itertools.pairwise(truth.boundaries), strict=True
    ):
        mine = [s for s in samples if phase_of(s) is phase]
        col = sum(s["energy_j"] for s in mine)
        # The counter over exactly the span of this phase's windows (which close at the first
        # tick after a boundary, a few ms late), so the comparison is like for like.
        win = counter_at(mine[-1]["t1"]) - counter_at(mine[0]["t0"]) if mine else math.nan
        idle = sum(s.get("idle_s") or 0.0 for s in mine)
        row = {
            "phase": phase.name,
            "seconds": b - a,
            "counter_j": cb - ca,  # the boundary reads
            "late_s": (ta - a) + (tb - b),  # how late those reads were, together
            "collector_j": col,
            "counter_windows_j": win,
            "diff_pct": pct(col, win),
            "power_integral_j": integrate(truth.power, a, b),
            "mean_w": (cb - ca) / (tb - ta),
            "idle_detected_s": idle,
            "idle_true_s": (b - a) if phase.idle else 0.0,
        }
        rows.append(row)
        print(
            f"{phase.name:<10} {row['seconds']:>6.1f} {row['counter_j']:>10.1f} "
            f"{1000 * row['late_s']:>7.1f} {col:>11.1f} {win:>13.1f} {row['diff_pct']:>7.2f} "
            f"{row['power_integral_j']:>11.1f} {row['mean_w']:>7.1f} "
            f"{idle:>7.1f} {row['idle_true_s']:>11.1f}"
        )
    idle_detected = sum(r["idle_detected_s"] for r in rows if r["idle_true_s"])
    idle_true = sum(r["idle_true_s"] for r in rows)

    # The shared phase: the collector's split vs each process's own utilization and work.
    shared = next(s for s in spans if s[0].name == "shared")
    shared_windows = [s for s in samples if phase_of(s) is shared[0]]
    by_team: dict[str, float] = {}
    for s in shared_windows:
        for share in s.get("shares", []):
            key = share.get("team") or "unattributed"
            by_team[key] = by_team.get(key, 0.0) + share["energy_j"]
    shared_total = sum(by_team.values()) or math.nan
    a, b = shared[1], shared[2]
    util = {}
    for team, pid in zip(TEAMS, load.pids, strict=True):
        seen = [u for t, u in truth.proc_util.get(pid, []) if a + 1.0 * scale <= t <= b]
        util[team] = sum(seen) / len(seen) if seen else math.nan
    util_total = sum(v for v in util.values() if not math.isnan(v)) or math.nan
    if simulated:
        work = dict(zip(TEAMS, sim_utils(shared[0]), strict=True))
    else:
        flop = {
            team: sum(x["flop"] for x in stats if x.get("phase") == "shared")
            for team, stats in zip(TEAMS, load.stats, strict=True)
        }
        work = {t: 100 * f / (sum(flop.values()) or math.nan) for t, f in flop.items()}
    others = sorted(truth.nvml_pids - set(load.pids))
    print("shared phase (A full, B half duty): collector share vs NVML per-process SM util vs work")
    for team in TEAMS:
        print(
            f"  {team}: share {100 * by_team.get(team, 0.0) / shared_total:5.1f} %  "
            f"util {100 * util[team] / util_total:5.1f} % (mean smUtil {util[team]:.1f})  "
            f"work {work[team]:5.1f} %"
        )
    if by_team.get("unattributed"):
        print(
            f"  unattributed: {100 * by_team['unattributed'] / shared_total:.1f} % "
            f"(NVML PIDs {others or '-'} vs load PIDs {load.pids}: a PID namespace?)"
        )
    if not simulated:
        for team, info, stats in zip(TEAMS, load.info, load.stats, strict=True):
            busy = {x["phase"]: round(x["busy_s"], 1) for x in stats if "phase" in x}
            print(f"  {team}: {info} busy_s per phase {busy}")

    figures: dict[str, Any] = {
        "gpu_model": gpu,
        "gpu_driver": driver,
        "phase_scale": scale,
        "collector_cpu_percent": cpu_percent,
        "collector_rss_mb": rss_mb,
        "shared_split_pct": {t: 100 * by_team.get(t, 0.0) / shared_total for t in TEAMS},
        "shared_util_pct": {t: 100 * util[t] / util_total for t in TEAMS},
        "shared_work_pct": work,
        "idle_detected_s": idle_detected,
        "true_idle_s": idle_true,
        "collector_energy_j": collector_j,
        "counter_energy_j": counter_j,
        "power_integral_j": power_j,
        "gpu_energy_vs_power_integral_pct": pct(collector_j, power_j),
        "gpu_energy_vs_counter_pct": pct(collector_j, counter_j),
        "phases": rows,
    }
    for key, value in figures.items():
        if key == "phases":
            continue
        if isinstance(value, dict):
            value = " ".join(f"{k}={v:.1f}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.3f}"
        print(f"{key}: {value}")
    return figures


if __name__ == "__main__":
    sys.exit(main())
