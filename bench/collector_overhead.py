"""Collector overhead: a real `greenkpi-collector run` at 1 Hz over 8 simulated GPUs (plus the
psutil CPU/DRAM estimate) posting to a local 201-answering server, for a bounded time.

    python bench/collector_overhead.py [--seconds 60] [--window-s 10] [--slurm]

Prints `collector_cpu_percent: X` (of one core, after a warm-up; the collector's own CPU time plus
that of the children it ran and reaped, i.e. squeue/scontrol) and `collector_rss_mb: Y` last.
Target (issue 3): <= 0.5 % and <= 60 MB.

--slurm (root, Debian's slurm-wlm + munge): starts a real single-node Slurm cluster
(tests/testsupport/slurm.py), submits three jobs holding the 4 fake GPUs' GRES (2 + 1 + 1, one of
them without a process on its GPU), puts the jobs' PIDs on simulated GPUs 0-2, and runs the
collector with slurm = on: per tick it maps every GPU process to its job (cgroup, cached per PID
and start time) and every GPU to its allocation; every slurm_refresh_s it runs `squeue --json`.
Also prints slurmctld's CPU over the same span (the controller's cost of answering).

--exporter dcgm-exporter|kepler: no NVML; the collector scrapes, every second, an exposition this
script serves for --gpus GPUs: dcgm-exporter's 25 default fields per GPU (etc/default-counters.csv,
release 4.5.3-4.8.2) with pod labels, or Kepler 0.10+'s GPU and pod families, energy counters
growing at 300 W per GPU. Its parse (prometheus_client) and the unit check are what is measured.

--kubernetes: kubernetes = on against this script's fake node (tests/testsupport/k8s_node.py): a
kubelet pod-resources gRPC server on a unix socket (the vendored proto; the pods hold simulated
GPUs 0-3: vision/train-a GPUs 0-1 and a time-sliced GPU 2 shared with nlp/serve-b, vision/idle-c
GPU 3 with no process) and an API server answering the PodList JSON; the GPU processes' cgroup
files under a fake proc root. Measured: the background listing thread (kubelet List every 10 s,
pod list every 30 s), the per-tick PID -> pod look-ups and the pods' shares in every window.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

# dcgm-exporter's default fields (name, type) at release 4.5.3-4.8.2, etc/default-counters.csv.
DCGM_FIELDS = (
    "SM_CLOCK g;MEM_CLOCK g;MEMORY_TEMP g;GPU_TEMP g;POWER_USAGE g;TOTAL_ENERGY_CONSUMPTION c;"
    "PCIE_REPLAY_COUNTER c;GPU_UTIL g;MEM_COPY_UTIL g;ENC_UTIL g;DEC_UTIL g;XID_ERRORS g;FB_FREE g;"
    "FB_USED g;FB_RESERVED g;NVLINK_BANDWIDTH_TOTAL c;VGPU_LICENSE_STATUS g;"
    "UNCORRECTABLE_REMAPPED_ROWS c;CORRECTABLE_REMAPPED_ROWS c;ROW_REMAP_FAILURE g"
)
PROF_FIELDS = (
    "GR_ENGINE_ACTIVE g;PIPE_TENSOR_ACTIVE g;DRAM_ACTIVE g;PCIE_TX_BYTES g;PCIE_RX_BYTES g"
)
T0 = time.time()


def exposition(kind: str, gpus: int) -> str:
    """What the exporter would serve now: energy grows at 300 W per GPU since T0."""
    joules = 1e6 + 300.0 * (time.time() - T0)
    out = []
    if kind == "kepler":
        out.append("# TYPE kepler_node_gpu_joules_total counter")
        for i in range(gpus):
            out.append(
                f'kepler_node_gpu_joules_total{{gpu="{i}",gpu_uuid="GPU-bench-{i:04d}",'
                f'gpu_name="NVIDIA H100",vendor="nvidia",node_name="n"}} {joules:.3f}'
            )
        out.append("# TYPE kepler_node_gpu_watts gauge")
        for i in range(gpus):
            out.append(
                f'kepler_node_gpu_watts{{gpu="{i}",gpu_uuid="GPU-bench-{i:04d}",'
                f'gpu_name="NVIDIA H100",vendor="nvidia",node_name="n"}} 300'
            )
        out.append("# TYPE kepler_pod_gpu_joules_total counter")
        for p in range(gpus):
            out.append(
                f'kepler_pod_gpu_joules_total{{pod_id="{p}",pod_name="pod-{p}",'
                f'pod_namespace="ns",state="running",node_name="n"}} {joules / gpus:.3f}'
            )
        return "\n".join(out) + "\n"
    fields = [("DCGM_FI_DEV_" + f, t) for f, t in (x.split() for x in DCGM_FIELDS.split(";"))]
    fields += [("DCGM_FI_PROF_" + f, t) for f, t in (x.split() for x in PROF_FIELDS.split(";"))]
    for name, t in fields:
        out.append(f"# HELP {name} {name} (in mJ)." if "ENERGY" in name else f"# HELP {name} x")
        out.append(f"# TYPE {name} {'counter' if t == 'c' else 'gauge'}")
        value = {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": f"{joules * 1000:.0f}"}.get(name, "300")
        for i in range(gpus):
            out.append(
                f'{name}{{gpu="{i}",UUID="GPU-bench-{i:04d}",pci_bus_id="00000000:{i:02X}:00.0",'
                f'device="nvidia{i}",modelName="NVIDIA H100 80GB HBM3",hostname="n",'
                f'DCGM_FI_DRIVER_VERSION="550.54.15",container="c",namespace="ns",'
                f'pod="pod-{i}"}} {value}'
            )
    return "\n".join(out) + "\n"


class Accept(BaseHTTPRequestHandler):
    exporter = "dcgm-exporter"
    gpus = 8
    pod_shares = 0  # shares naming a Kubernetes pod in the posted batches (--kubernetes)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # the exporter's /metrics
        body = exposition(self.exporter, self.gpus).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        Accept.pod_shares += body.count(b'"kind":"k8s"')
        body = b'{"accepted": 1, "duplicates": 0}'
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--slurm", action="store_true", help="a real local Slurm cluster and jobs")
    ap.add_argument("--slurm-refresh-s", type=float, default=15.0)
    ap.add_argument("--exporter", choices=("dcgm-exporter", "kepler"), help="scrape, no NVML")
    ap.add_argument("--source-interval-s", type=float, default=5.0, help="seconds between scrapes")
    ap.add_argument("--kubernetes", action="store_true", help="fake kubelet + API server, k8s on")
    args = ap.parse_args()
    Accept.exporter, Accept.gpus = args.exporter or "", args.gpus
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = Path(tempfile.mkdtemp(prefix="gk-bench-"))
    exe = shutil.which("greenkpi-collector") or str(
        Path(sys.executable).parent / "greenkpi-collector"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENKPI_")}
    env.update(
        GREENKPI_SERVER=f"http://127.0.0.1:{server.server_address[1]}",
        GREENKPI_TOKEN="gkc_bench",
        GREENKPI_STATE_DIR=str(state),
        GREENKPI_GPU="sim",
        GREENKPI_SIM_GPUS=str(args.gpus),
        GREENKPI_CPU="estimate",
        GREENKPI_SAMPLE_INTERVAL_S="1",
        GREENKPI_WINDOW_S=str(args.window_s),
        GREENKPI_LOG_LEVEL="warning",
        GREENKPI_SLURM="off",
    )
    if args.exporter:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        env.update(GREENKPI_GPU="off", GREENKPI_SOURCE=f"{args.exporter}={url}")
        env.update(GREENKPI_SOURCE_INTERVAL_S=str(args.source_interval_s))
    cluster = None
    ctld = None
    node = start_kubernetes(state, env) if args.kubernetes else None
    if args.slurm:
        cluster = start_slurm(state, env, args.slurm_refresh_s)
        ctld = psutil.Process(cluster.procs[0].pid)
    proc = subprocess.Popen([exe, "run"], env=env)
    try:
        handle = psutil.Process(proc.pid)
        time.sleep(args.warmup)  # exclude interpreter start-up and imports
        t0, c0 = time.monotonic(), handle.cpu_times()
        k0 = ctld.cpu_times() if ctld else None
        time.sleep(args.seconds)
        t1, c1 = time.monotonic(), handle.cpu_times()
        k1 = ctld.cpu_times() if ctld else None
        rss_mb = handle.memory_info().rss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        server.shutdown()
        if cluster is not None:
            cluster.stop()
            cluster.release()
        if node is not None:
            node()
        shutil.rmtree(state, ignore_errors=True)
    cpu = _cpu(c1) - _cpu(c0)
    print(
        f"window_s: {args.window_s}  gpus: {args.gpus}  measured_s: {t1 - t0:.1f}  "
        f"slurm: {'on, refresh ' + str(args.slurm_refresh_s) + ' s' if args.slurm else 'off'}  "
        f"exporter: {args.exporter + f' every {args.source_interval_s:g} s' if args.exporter else 'off (simulated NVML)'}  "
        f"kubernetes: {'on (fake kubelet + API server, 3 pods on 4 GPUs)' if args.kubernetes else 'off'}"
    )
    if k0 is not None and k1 is not None:
        ctld_cpu = (k1.user + k1.system) - (k0.user + k0.system)
        print(f"slurmctld_cpu_percent: {100 * ctld_cpu / (t1 - t0):.3f}")
    if args.kubernetes:
        print(f"pod_shares_posted: {Accept.pod_shares}")
    print(f"collector_cpu_percent: {100 * cpu / (t1 - t0):.3f}")
    print(f"collector_rss_mb: {rss_mb:.1f}")
    return 0


def _cpu(times: Any) -> float:
    return times.user + times.system + times.children_user + times.children_system


def start_kubernetes(state: Path, env: dict[str, str]) -> Any:
    """The fake node's kubelet socket, API server and cgroup files; returns a stop function."""
    from concurrent import futures

    import grpc

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from greenkpi_collector.sources.kubernetes.podresources_v1 import api_pb2_grpc
    from testsupport.k8s_node import CID_A, CID_B, UID_A, UID_B, ApiServer, Kubelet, fake_proc

    host = os.uname().nodename.split(".")[0] or "sim"  # the simulated GPUs' UUIDs name it
    kubelet = Kubelet()
    kubelet.pods = [
        ("vision", "train-a", "trainer", "nvidia.com/gpu", [f"GPU-{host}-00", f"GPU-{host}-01"]),
        ("vision", "train-a", "trainer", "nvidia.com/gpu", [f"GPU-{host}-02::0"]),
        ("nlp", "serve-b", "server", "nvidia.com/gpu", [f"GPU-{host}-02::1"]),
        ("vision", "idle-c", "main", "nvidia.com/gpu", [f"GPU-{host}-03"]),
    ]
    sock = state / "kubelet.sock"
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(kubelet, grpc_server)
    grpc_server.add_insecure_port(f"unix://{sock}")
    grpc_server.start()
    api = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    proc = state / "proc"
    pod_a = f"0::/kubepods.slice/kubepods-pod{UID_A.replace('-', '_')}.slice/cri-containerd-{CID_A}.scope\n"
    fake_proc(proc, 101, pod_a)
    fake_proc(proc, 202, f"11:devices:/kubepods/besteffort/pod{UID_B}/{CID_B}\n")
    scenario = state / "scenario.json"
    # GPUs 0-1: train-a's process; GPU 2 time-sliced by train-a and serve-b; GPU 3: idle-c, idle
    procs = {"0": [[101, 60]], "1": [[101, 40]], "2": [[101, 30], [202, 30]]}
    scenario.write_text(json.dumps({"processes": procs}))
    env.update(
        GREENKPI_KUBERNETES="on",
        GREENKPI_KUBELET_SOCKET=str(sock),
        GREENKPI_KUBE_API_URL=f"http://127.0.0.1:{api.server_address[1]}",
        GREENKPI_KUBE_NODE="gpu-node-7",
        GREENKPI_KUBE_CLUSTER="bench",
        GREENKPI_PROC_ROOT=str(proc),
        GREENKPI_SIM_SCENARIO=str(scenario),
    )

    def stop() -> None:
        print(f"kubelet_lists: {kubelet.lists}  api_server_lists: {len(ApiServer.seen)}")
        grpc_server.stop(grace=None)
        api.shutdown()

    return stop


def start_slurm(state: Path, env: dict[str, str], refresh_s: float) -> Any:
    """A real local cluster with three GPU jobs; the collector's env is pointed at it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from testsupport.slurm import LocalSlurm, machine_lock

    lock = machine_lock()  # the Slurm ports are machine-wide: wait for test sessions using them
    lock.__enter__()
    cluster = LocalSlurm(state / "slurm")
    cluster.release = lambda: lock.__exit__(None, None, None)  # type: ignore[attr-defined]
    cluster.start()
    pids = []
    for gres, account in (("gpu:2", "vision"), ("gpu:1", "nlp"), ("gpu:1", "idle")):
        job = cluster.sbatch(f"--gres={gres}", f"--account={account}", "-J", f"bench-{account}")
        pids.append(cluster.wait_running(job)[-1])
    scenario = state / "scenario.json"
    # GPUs 0-1: the vision job, GPU 2: nlp; the idle job's GPU 3 has no process.
    procs = {"0": [[pids[0], 60]], "1": [[pids[0], 40]], "2": [[pids[1], 30]]}
    scenario.write_text(json.dumps({"processes": procs}))
    env.update(
        SLURM_CONF=str(cluster.conf),
        GREENKPI_SLURM="on",
        GREENKPI_SLURM_REFRESH_S=str(refresh_s),
        GREENKPI_SIM_SCENARIO=str(scenario),
    )
    return cluster


if __name__ == "__main__":
    sys.exit(main())
