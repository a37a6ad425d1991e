"""A simulated Kubernetes GPU node for tests (issue 13): what its kubelet answers on the
pod-resources socket (a real gRPC servicer of the vendored proto), what its API server answers for
``GET /api/v1/pods`` (Kubernetes PodList JSON), and /proc cgroup files of its GPU processes.

Three pods: vision/train-a and nlp/serve-b share the time-sliced GPU-T (replicas ``::0``/``::1``)
and each hold a MIG slice of GPU-M (MIG-M2 / MIG-M1); vision/idle-c holds GPU-I and runs nothing.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

from greenkpi_collector.sources.kubernetes.podresources_v1 import api_pb2, api_pb2_grpc

UID_A = "0b7c6f1e-3d2a-4c5b-9e8f-112233445566"  # vision/train-a (time-sliced GPU-T)
UID_B = "1c8d7e2f-4e3b-4d6c-8f9e-223344556677"  # nlp/serve-b (time-sliced GPU-T, MIG slice)
UID_C = "2d9e8f3a-5f4c-4e7d-9a8f-334455667788"  # vision/idle-c (holds GPU-I, no process)
CID_A = "a" * 64
CID_B = "b" * 64


class Kubelet(api_pb2_grpc.PodResourcesListerServicer):
    """What a kubelet with the NVIDIA device plugin answers on its pod-resources socket."""

    def __init__(self) -> None:
        # hanging: List answers nothing until ``release`` (a kubelet stuck on a lock)
        self.hanging = False
        self.release = threading.Event()
        self.lists = 0
        self.pods = [
            ("vision", "train-a", "trainer", "nvidia.com/gpu", ["GPU-T::0"]),
            ("nlp", "serve-b", "server", "nvidia.com/gpu", ["GPU-T::1"]),
            ("nlp", "serve-b", "server", "nvidia.com/mig-1g.10gb", ["MIG-M1"]),
            ("vision", "train-a", "trainer", "nvidia.com/mig-3g.40gb", ["MIG-M2"]),
            ("vision", "idle-c", "main", "nvidia.com/gpu", ["GPU-I"]),
            ("vision", "idle-c", "main", "example.com/nic", ["nic-0"]),  # not a GPU
        ]

    def List(self, request, context):
        self.lists += 1
        if self.hanging:
            self.release.wait(10)
        out = api_pb2.ListPodResourcesResponse()
        for namespace, name, container, resource, ids in self.pods:
            pod = out.pod_resources.add(name=name, namespace=namespace)
            c = pod.containers.add(name=container)
            c.devices.add(resource_name=resource, device_ids=ids)
        return out

    def GetAllocatableResources(self, request, context):
        out = api_pb2.AllocatableResourcesResponse()
        out.devices.add(resource_name="nvidia.com/gpu", device_ids=["GPU-T::0", "GPU-T::1"])
        out.devices.add(resource_name="nvidia.com/gpu", device_ids=["GPU-I"])
        out.devices.add(resource_name="nvidia.com/mig-1g.10gb", device_ids=["MIG-M1"])
        out.devices.add(resource_name="nvidia.com/mig-3g.40gb", device_ids=["MIG-M2"])
        return out


def pod_json(namespace: str, name: str, uid: str, labels: dict, annotations=None, cid=None):
    status: dict = {"phase": "Running", "startTime": "2026-11-22T09:00:00Z"}
    if cid:
        status["containerStatuses"] = [{"name": "trainer", "containerID": f"containerd://{cid}"}]
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": labels,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
            | (annotations or {}),
        },
        "spec": {"nodeName": "gpu-node-7"},
        "status": status,
    }


PODS = [
    pod_json(
        "vision",
        "train-a",
        UID_A,
        {"team": "vision", "app.kubernetes.io/name": "resnet50"},
        cid=CID_A,
    ),
    pod_json(
        "nlp",
        "serve-b",
        UID_B,
        {"team": "nlp", "app.kubernetes.io/name": "bert"},
        {"greenkpi.io/run": "bert-serve-7"},
    ),
    pod_json("vision", "idle-c", UID_C, {"team": "vision"}),
]


class ApiServer(http.server.BaseHTTPRequestHandler):
    mode = "ok"
    seen: list = []
    release = threading.Event()

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if type(self).mode == "hang":
            type(self).release.wait(10)  # released by the test once the client gave up
            return
        if type(self).mode == "403":
            body = {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}
            self.send_response(403)
        else:
            body = {"kind": "PodList", "apiVersion": "v1", "items": PODS}
            self.send_response(200)
        data = json.dumps(body).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def fake_proc(root: Path, pid: int, cgroup: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(cgroup)
