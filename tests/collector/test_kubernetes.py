"""Kubernetes pod attribution (issue 13) against real protocol peers, not mocks of our own code:

* a real gRPC server on a unix socket serving the kubelet's own pod-resources ``api.proto`` (the
  vendored file, compiled by grpcio-tools: the same generated modules the client uses);
* a local HTTP server answering ``GET /api/v1/pods`` with Kubernetes Pod JSON (and 403 / a hang);
* /proc/<pid>/cgroup texts in the formats the kubelet's cgroupfs (v1) and systemd (v2) drivers write.
There is no kubelet and no cluster on these machines (docs/collector.md says what that leaves out).
"""

from __future__ import annotations

import filecmp
import http.server
import os
import shutil
import subprocess
import sys
import threading
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path

import grpc
import orjson
import pytest
from greenkpi_collector.attribution import split_interval
from greenkpi_collector.sources.base import ProcUse, Reading
from greenkpi_collector.sources.kubernetes.apiserver import PodCache
from greenkpi_collector.sources.kubernetes.attributor import KubeAttributor
from greenkpi_collector.sources.kubernetes.cgroup import pod_of_cgroup
from greenkpi_collector.sources.kubernetes.podresources import (
    PodResourcesClient,
    PodResourcesUnavailable,
)
from greenkpi_collector.sources.kubernetes.podresources_v1 import api_pb2_grpc
from greenkpi_collector.windows import DeviceWindow
from testsupport.k8s_node import (
    CID_A,
    CID_B,
    UID_A,
    UID_B,
    UID_C,
    ApiServer,
    Kubelet,
    fake_proc,
)

from greenkpi_schema import Limits, parse_batch
from greenkpi_schema.v1 import sample_to_json

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "collectors/greenkpi_collector/sources/kubernetes/podresources_v1"


@pytest.fixture
def kubelet(tmp_path: Path):
    path = tmp_path / "kubelet.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Kubelet()
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix://{path}")
    server.start()
    yield str(path), servicer
    servicer.release.set()
    server.stop(grace=None)


@pytest.fixture
def apiserver():
    ApiServer.mode, ApiServer.seen = "ok", []
    ApiServer.release = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ApiServer
    ApiServer.release.set()
    server.shutdown()


# --- the generated client is the kubelet's proto -------------------------------------------------


def test_committed_grpc_modules_are_what_grpcio_tools_makes_of_the_vendored_proto(tmp_path):
    text = (PROTO_DIR / "api.proto").read_text()
    assert "Licensed under the Apache License, Version 2.0" in text
    assert "service PodResourcesLister" in text and "rpc GetAllocatableResources" in text
    out = tmp_path / "out"
    target = out / "greenkpi_collector/sources/kubernetes/podresources_v1"
    target.mkdir(parents=True)
    src = tmp_path / "src" / "greenkpi_collector/sources/kubernetes/podresources_v1"
    src.mkdir(parents=True)
    shutil.copy(PROTO_DIR / "api.proto", src / "api.proto")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path / 'src'}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(src / "api.proto"),
        ],
        check=True,
    )
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        assert filecmp.cmp(target / name, PROTO_DIR / name, shallow=False), name


# --- pod-resources over a real unix-socket gRPC server ----------------------------------------


def test_list_and_allocatable_over_the_unix_socket(kubelet):
    path, _ = kubelet
    client = PodResourcesClient(path)
    allocations = client.allocations()
    # time-sliced replicas GPU-T::0 / ::1 are one GPU shared by two pods; the NIC is not a GPU
    assert {k: [r.key for r in v] for k, v in allocations.items()} == {
        "GPU-T": ["vision/train-a", "nlp/serve-b"],
        "MIG-M1": ["nlp/serve-b"],
        "MIG-M2": ["vision/train-a"],
        "GPU-I": ["vision/idle-c"],
    }
    assert allocations["GPU-I"][0].container == "main"
    assert client.allocatable() == {
        "GPU-T": "nvidia.com/gpu",
        "GPU-I": "nvidia.com/gpu",
        "MIG-M1": "nvidia.com/mig-1g.10gb",
        "MIG-M2": "nvidia.com/mig-3g.40gb",
    }
    client.close()


def test_a_missing_socket_is_said_in_plain_words(tmp_path):
    with pytest.raises(PodResourcesUnavailable, match="no kubelet pod-resources socket at"):
        PodResourcesClient(str(tmp_path / "absent.sock")).allocations()


def test_a_socket_we_may_not_open_is_permission_denied(kubelet):
    path, _ = kubelet
    os.chmod(path, 0o600)  # root's; the probe runs as nobody (util-linux setpriv)
    probe = (
        "from greenkpi_collector.sources.kubernetes.podresources import *\n"
        f"try:\n    PodResourcesClient({path!r}).allocations()\n"
        "except PodResourcesUnavailable as exc:\n    print(exc)\n"
    )
    os.chmod(Path(path).parent, 0o755)
    if os.geteuid() != 0:
        os.chmod(path, 0o000)
        cmd = [sys.executable, "-c", probe]
    else:
        cmd = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            probe,
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    assert "permission denied on" in out.stdout, out.stdout + out.stderr


def test_a_server_that_does_not_answer_is_an_error_not_a_hang(tmp_path):
    # a plain socket file nobody serves gRPC on: UNAVAILABLE within the timeout
    import socket

    path = tmp_path / "dead.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    try:
        client = PodResourcesClient(str(path), timeout_s=0.5)
        with pytest.raises(PodResourcesUnavailable, match="kubelet pod-resources List failed"):
            client.allocations()
    finally:
        sock.close()


# --- cgroups -------------------------------------------------------------------------------------


def test_pod_uid_from_cgroup_v1_and_v2_paths():
    v1 = (
        "12:memory:/kubepods/burstable/pod0b7c6f1e-3d2a-4c5b-9e8f-112233445566/" + CID_A + "\n"
        "11:devices:/kubepods/burstable/pod0b7c6f1e-3d2a-4c5b-9e8f-112233445566/" + CID_A + "\n"
    )
    assert pod_of_cgroup(v1) == (UID_A, CID_A)
    v2 = (
        "0::/kubepods.slice/kubepods-besteffort.slice/"
        "kubepods-besteffort-pod1c8d7e2f_4e3b_4d6c_8f9e_223344556677.slice/"
        f"cri-containerd-{CID_B}.scope\n"
    )
    assert pod_of_cgroup(v2) == (UID_B, CID_B)
    guaranteed = (
        f"0::/kubepods.slice/kubepods-pod{UID_C.replace('-', '_')}.slice/crio-{CID_A}.scope"
    )
    assert pod_of_cgroup(guaranteed) == (UID_C, CID_A)
    assert pod_of_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n") is None
    assert pod_of_cgroup("0::/system.slice/pod-manager.service\n") is None


# --- the API server ------------------------------------------------------------------------------


def test_pod_labels_from_the_api_server_with_the_token_and_node_selector(apiserver, tmp_path):
    url, handler = apiserver
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    cache = PodCache("gpu-node-7", url=url, token_file=str(token), ttl_s=30)
    cache.refresh()
    assert handler.seen == [
        ("/api/v1/pods?fieldSelector=spec.nodeName%3Dgpu-node-7", "Bearer sa-token")
    ]
    a = cache.by_uid[UID_A]
    assert a.labels == {"app.kubernetes.io/name": "resnet50", "team": "vision"}
    assert a.annotations == {}  # only greenkpi.io/* annotations are kept
    assert a.containers == {CID_A: "trainer"}
    assert a.start == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    assert cache.by_key["nlp/serve-b"].annotations == {"greenkpi.io/run": "bert-serve-7"}
    cache.refresh()
    assert len(handler.seen) == 1  # within the TTL: no second request


def test_403_and_timeouts_keep_cached_labels_and_never_raise(apiserver):
    url, handler = apiserver
    now = [0.0]
    cache = PodCache(
        "gpu-node-7", url=url, ttl_s=30, retry_s=10, timeout_s=0.3, clock=lambda: now[0]
    )
    cache.refresh()
    assert len(cache.by_uid) == 3
    handler.mode = "403"
    now[0] = 31.0
    cache.refresh()
    assert len(cache.by_uid) == 3 and cache.by_uid[UID_A].labels["team"] == "vision"
    assert cache.errors() == [
        "Kubernetes API: HTTP 403 listing pods (the service account may not list pods: RBAC); "
        "pod labels from cache (3 pods)"
    ]
    handler.mode = "hang"
    now[0] = 45.0
    cache.refresh()
    handler.release.set()
    assert "timed out" in (cache.last_error or "") and len(cache.by_uid) == 3
    # a pod missed in the cache asks again, but not more often than retry_s
    calls = len(handler.seen)
    assert cache.by_pod_uid("ffffffff-0000-0000-0000-000000000000") is None
    assert len(handler.seen) == calls


def test_the_cache_is_bounded(apiserver):
    url, _ = apiserver
    cache = PodCache("gpu-node-7", url=url, max_pods=2)
    cache.refresh()
    assert list(cache.by_uid) == [UID_B, UID_C] and set(cache.by_key) == {
        "nlp/serve-b",
        "vision/idle-c",
    }


# --- the attributor through real windows ---------------------------------------------------------


@pytest.fixture
def node(kubelet, apiserver, tmp_path):
    """Three pods on one node: vision/train-a and nlp/serve-b share time-sliced GPU-T and each
    hold a MIG slice of GPU-M; vision/idle-c holds GPU-I and runs nothing."""
    path, _ = kubelet
    url, _ = apiserver
    proc = tmp_path / "proc"
    fake_proc(
        proc,
        101,
        f"0::/kubepods.slice/kubepods-pod{UID_A.replace('-', '_')}.slice/"
        f"cri-containerd-{CID_A}.scope\n",
    )
    fake_proc(proc, 202, f"11:devices:/kubepods/besteffort/pod{UID_B}/{CID_B}\n")
    fake_proc(proc, 303, "0::/system.slice/sshd.service\n")  # a host process
    attributor = KubeAttributor(
        None,
        pods=PodResourcesClient(path),
        cache=PodCache("gpu-node-7", url=url),
        cluster="prod-eu",
        mig_parent={"MIG-M1": "GPU-M", "MIG-M2": "GPU-M"},
        proc_root=str(proc),
    )
    attributor.refresh()
    return attributor


def window_of(attributor, uuid, procs, busy, joules=(600.0, 600.0)):
    t0 = datetime(2026, 11, 22, 11, 0, tzinfo=UTC).timestamp()
    first = Reading(uuid, "gpu", "counter", counter=0, counter_unit_j=1.0, procs=())
    window = DeviceWindow(uuid, "gpu", t0, t0, first, 0)
    counter = 0
    for i, j in enumerate(joules, start=1):
        counter += int(j)
        r = Reading(
            uuid, "gpu", "counter", counter=counter, counter_unit_j=1.0, busy=busy, procs=procs
        )
        held = attributor.allocated(uuid, t0 + 30 * i)
        window.add(r, t0 + 30 * i, attributor.resolve, held)
    sample = window.close(attributor.describe)
    body = sample_to_json(sample)
    # what the collector sends, the server's own validator accepts
    parse_batch(
        orjson.loads(
            orjson.dumps(
                {
                    "schema_version": 1,
                    "host": {"hostname": "n", "agent_version": "0"},
                    "samples": [body],
                }
            )
        ),
        now=datetime(2026, 11, 22, 11, 5, tzinfo=UTC),
        limits=Limits(),
    )
    return [
        (
            s.get("scheduler", {}).get("namespace", "")
            + "/"
            + s.get("scheduler", {}).get("pod", ""),
            s["method"],
            round(s["energy_j"], 6),
            s.get("run"),
        )
        for s in body["shares"]
    ], body


def test_time_sliced_gpu_splits_by_process_utilization_between_pods(node):
    shares, body = window_of(
        node, "GPU-T", (ProcUse(101, 0.6), ProcUse(202, 0.2), ProcUse(303, 0.2)), 0.9
    )
    # 1200 J: 60/20/20 % of SM -> 720 / 240 / 240 (the host process is nobody's)
    assert shares == [
        ("vision/train-a", "utilization", 720.0, "k8s:prod-eu:vision/train-a"),
        ("nlp/serve-b", "utilization", 240.0, "bert-serve-7"),
        ("/", "unattributed", 240.0, None),
    ]
    a = body["shares"][0]["scheduler"]
    assert a == {
        "kind": "k8s",
        "namespace": "vision",
        "pod": "train-a",
        "cluster": "prod-eu",
        "container": "trainer",
        "uid": UID_A,
        "labels": {"app.kubernetes.io/name": "resnet50", "team": "vision"},
        "start": "2026-11-22T09:00:00Z",
    }


def test_without_per_process_utilization_the_split_is_equal(node):
    shares, _ = window_of(node, "GPU-M", (ProcUse(101), ProcUse(202)), None)
    assert [(p, m, e) for p, m, e, _ in shares] == [
        ("vision/train-a", "equal", 600.0),
        ("nlp/serve-b", "equal", 600.0),
    ]


def test_mig_slices_of_an_idle_gpu_are_each_pods_allocated_idle_share(node):
    shares, _ = window_of(node, "GPU-M", (), 0.0)
    assert sorted((p, m, e) for p, m, e, _ in shares) == [
        ("nlp/serve-b", "allocated-idle", 600.0),
        ("vision/train-a", "allocated-idle", 600.0),
    ]


def test_a_gpu_held_by_a_pod_without_process_is_that_pods_waste(node):
    shares, body = window_of(node, "GPU-I", (), 0.0, joules=(300.0, 300.0))
    assert shares == [("vision/idle-c", "allocated-idle", 600.0, "k8s:prod-eu:vision/idle-c")]
    assert body["shares"][0]["scheduler"]["container"] == "main"


def test_no_kubelet_socket_measures_on_with_attribution_unknown(tmp_path, apiserver):
    url, _ = apiserver
    attributor = KubeAttributor(
        None,
        pods=PodResourcesClient(str(tmp_path / "absent.sock")),
        cache=PodCache("gpu-node-7", url=url),
        proc_root=str(tmp_path),
    )
    attributor.refresh()
    assert attributor.errors() == [
        f"no kubelet pod-resources socket at {tmp_path / 'absent.sock'}; pod attribution unknown"
    ]
    attributor.refresh()
    assert attributor.errors() == []  # said once, not every tick
    assert attributor.allocated("GPU-I", 0.0) is None
    parts = split_interval(100.0, [ProcUse(999)], attributor.resolve, None)
    assert [(k.method, v) for k, v in parts] == [("unattributed", 100.0)]


# --- greenkpi-collector check ------------------------------------------------------------------


def test_check_says_what_the_kubelet_and_api_server_show_or_why_not(kubelet, apiserver, tmp_path):
    from greenkpi_collector.check import _check_kubernetes
    from greenkpi_collector.config import load

    path, _ = kubelet
    url, handler = apiserver
    lines: list[str] = []
    config = load({"kubelet_socket": path, "kube_api_url": url, "kube_node": "gpu-node-7"}, {})
    assert _check_kubernetes(config, lines.append) == 0
    assert lines == [
        f"Kubernetes: kubelet {path}: 4 allocatable GPU device(s), 4 allocated to 3 pod(s)",
        "Kubernetes: API server lists 3 pod(s) on node gpu-node-7",
    ]
    lines.clear()
    handler.mode = "403"
    absent = str(tmp_path / "absent.sock")
    config = load({"kubernetes": "on", "kubelet_socket": absent, "kube_api_url": url}, {})
    assert _check_kubernetes(config, lines.append) == 2
    assert lines[0] == (
        f"Kubernetes: no kubelet pod-resources socket at {absent}; "
        "the collector measures on with pod attribution unknown"
    )
    assert "HTTP 403 listing pods" in lines[1]
    lines.clear()
    config = load({"kubelet_socket": absent}, {})  # auto: no socket, not a Kubernetes node
    assert _check_kubernetes(config, lines.append) == 0
    assert lines == [f"Kubernetes: not used: no kubelet pod-resources socket at {absent}"]


# --- the agent wires it ---------------------------------------------------------------------------


def test_the_agent_builds_the_kube_attributor_with_nvml_mig_parents(kubelet, tmp_path):
    from greenkpi_collector.agent import attributor, build_kubernetes
    from greenkpi_collector.attribution import Registry
    from greenkpi_collector.config import load
    from greenkpi_collector.sources.nvml import NvmlSource
    from greenkpi_collector.sources.sim import SimGpu, SimulatedNvml

    path, _ = kubelet
    notes: list[str] = []
    assert build_kubernetes(load({"kubelet_socket": str(tmp_path / "none")}, {}), notes) is None
    config = load({"kubelet_socket": path, "kube_api_url": "http://127.0.0.1:9"}, {})
    kube = build_kubernetes(config, notes)
    assert kube is not None and notes == []
    nvml = NvmlSource(SimulatedNvml([SimGpu("GPU-M", mig=True, mig_instances=2), SimGpu("GPU-T")]))
    built = attributor(Registry(tmp_path / "registry"), None, [nvml], kube)
    assert isinstance(built, KubeAttributor)
    assert built.mig_parent == {"MIG-M-0": "GPU-M", "MIG-M-1": "GPU-M"}
    built.refresh()  # the API server is down (port 9): the kubelet still names the holders
    assert [c.job for c in built.allocated("GPU-T", 0.0)] == [
        ("", "vision/train-a"),
        ("", "nlp/serve-b"),
    ]
    assert any("Kubernetes API: unreachable" in e for e in built.errors())


def test_without_grpcio_the_agent_measures_on_and_says_why(kubelet, monkeypatch):
    from greenkpi_collector.agent import build_kubernetes
    from greenkpi_collector.config import load

    path, _ = kubelet
    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    monkeypatch.delitem(
        sys.modules, "greenkpi_collector.sources.kubernetes.podresources_v1.api_pb2_grpc"
    )
    notes: list[str] = []
    assert build_kubernetes(load({"kubelet_socket": path}, {}), notes) is None
    assert notes and notes[0].startswith("no Kubernetes attribution: ") and "grpc" in notes[0]
    with pytest.raises(Exception, match="grpc"):
        build_kubernetes(load({"kubelet_socket": path, "kubernetes": "on"}, {}), [])


# --- never blocking: the listings run in a background thread -------------------------------------


def test_a_hung_kubelet_never_blocks_sampling_and_pods_go_out_incomplete(
    kubelet, apiserver, tmp_path
):
    """The agent's mode (``start``): the kubelet stops answering (List hangs past its 0.5 s
    timeout, every time); the sampling thread's per-tick calls never wait for it, the last
    known holders stay, and once the listing is older than stale_s every pod is sent
    complete:false. When the kubelet answers again, pods are complete again."""
    import time

    from gkc_helpers import wait_until

    path, servicer = kubelet
    url, _ = apiserver
    proc = tmp_path / "proc"
    fake_proc(proc, 202, f"11:devices:/kubepods/besteffort/pod{UID_B}/{CID_B}\n")
    attributor = KubeAttributor(
        None,
        pods=PodResourcesClient(path, timeout_s=0.5),
        cache=PodCache("gpu-node-7", url=url),
        mig_parent={"MIG-M1": "GPU-M", "MIG-M2": "GPU-M"},
        proc_root=str(proc),
        list_s=0.2,
        stale_s=1.0,
    )
    attributor.start()
    try:
        wait_until(lambda: "GPU-I" in attributor.holders, 5, "the first listing")
        claim = attributor.resolver("GPU-T")(202)
        assert claim is not None and claim.job == ("", "nlp/serve-b")
        # the pod's labels come from the API server in the same background pass, just after the
        # holders: on a loaded machine the first tick can see the holders before the labels
        wait_until(
            lambda: attributor.describe(claim.job)[0].complete is True, 5, "the pod's labels"
        )

        servicer.hanging = True
        lists = servicer.lists
        slowest = 0.0
        deadline = time.monotonic() + 2.5  # five hung Lists' worth
        while time.monotonic() < deadline:
            began = time.perf_counter()
            attributor.refresh()  # what the sampler calls every tick
            attributor.resolver("GPU-T")(202)
            attributor.allocated("GPU-I", time.time())
            attributor.describe(("", "nlp/serve-b"))
            slowest = max(slowest, time.perf_counter() - began)
            time.sleep(0.02)
        assert servicer.lists > lists  # the thread kept trying (and hanging)
        # a blocked tick would wait the List's 0.5 s timeout; margin for a loaded CI box
        assert slowest < 0.25, f"a tick waited {slowest:.3f} s on the kubelet"
        # the last known holders stay (idle-c's GPU is still its waste) but the facts are stale
        held = attributor.allocated("GPU-I", time.time())
        assert held is not None and held.job == ("", "vision/idle-c")  # type: ignore[union-attr]
        assert attributor.stale()
        assert attributor.describe(("", "nlp/serve-b"))[0].complete is False
        assert any("DEADLINE_EXCEEDED" in e for e in attributor.errors())

        servicer.hanging = False
        servicer.release.set()
        wait_until(lambda: not attributor.stale(), 5, "a good listing again")
        assert attributor.describe(("", "nlp/serve-b"))[0].complete is True
    finally:
        servicer.release.set()
        attributor.close()


def test_an_unknown_pod_wakes_the_thread_instead_of_asking_the_api_server_in_the_tick(
    kubelet, apiserver, tmp_path
):
    from gkc_helpers import wait_until

    path, _ = kubelet
    url, handler = apiserver
    proc = tmp_path / "proc"
    fake_proc(proc, 202, f"11:devices:/kubepods/besteffort/pod{UID_B}/{CID_B}\n")
    cache = PodCache("gpu-node-7", url=url, retry_s=0.1)
    attributor = KubeAttributor(
        None, pods=PodResourcesClient(path), cache=cache, proc_root=str(proc), list_s=60.0
    )
    handler.mode = "hang"  # the first pod list hangs past the cache's 2 s timeout
    attributor.start()
    try:
        wait_until(lambda: attributor.lists == 1, 5, "the first kubelet listing")
        import time

        began = time.perf_counter()
        claim = attributor.resolver("GPU-T")(202)  # the pod is not known yet: no labels now
        # the tick did not ask the hung API server (that would take its 2 s timeout)
        assert time.perf_counter() - began < 0.25
        assert claim is None or claim.job is None
        handler.mode = "ok"
        handler.release.set()
        wait_until(lambda: cache.by_uid.get(UID_B) is not None, 10, "the woken pod list")
        attributor.refresh()
        claim = attributor.resolver("GPU-T")(202)
        assert claim is not None and claim.job == ("", "nlp/serve-b")
    finally:
        handler.release.set()
        attributor.close()
