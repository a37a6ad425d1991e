"""The kubelet pod-resources API: which pod's container each device is allocated to.

Devices are what device plugins advertise: NVIDIA's plugin names a whole GPU by its UUID
(``GPU-…``), a MIG slice by its MIG UUID (``MIG-…``), and a time-sliced replica ``<uuid>::<n>``
(the suffix is dropped here: replicas of one GPU are one device shared by several pods).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
# The generated gRPC module: importing it imports grpc and checks the protobuf runtime's version.
PODRESOURCES_GRPC = "greenkpi_collector.sources.kubernetes.podresources_v1.api_pb2_grpc"
GPU_RESOURCE_PREFIXES = ("nvidia.com/",)  # nvidia.com/gpu, nvidia.com/mig-1g.10gb, ...


class PodResourcesUnavailable(Exception):
    """The kubelet socket cannot be used; the message says why (missing, permission, no answer)."""


@dataclass(frozen=True, slots=True)
class PodRef:
    """One container of one pod, as the kubelet names it."""

    namespace: str
    pod: str
    container: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"


def device_uuid(device_id: str) -> str:
    """A device plugin's id as NVML names the device: a time-sliced replica's ``::n`` dropped."""
    return device_id.split("::", 1)[0]


class PodResourcesClient:
    """``List`` and ``GetAllocatableResources`` over the kubelet's unix socket."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout_s: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._channel = None
        self._stub = None

    def _ready(self):  # type: ignore[no-untyped-def]
        denied = PodResourcesUnavailable(
            f"permission denied on {self.socket_path} (mount it and run with access to it)"
        )
        try:
            os.stat(self.socket_path)
        except FileNotFoundError:
            raise PodResourcesUnavailable(
                f"no kubelet pod-resources socket at {self.socket_path}"
            ) from None
        except PermissionError:
            raise denied from None  # a directory on the way is closed to us
        if not os.access(self.socket_path, os.R_OK | os.W_OK):
            raise denied
        if self._stub is None:
            import grpc

            from greenkpi_collector.sources.kubernetes.podresources_v1 import api_pb2_grpc

            self._channel = grpc.insecure_channel(f"unix://{self.socket_path}")
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
        return self._stub

    def _call(self, name: str):  # type: ignore[no-untyped-def]
        import grpc

        from greenkpi_collector.sources.kubernetes.podresources_v1 import api_pb2

        stub = self._ready()
        request = (
            api_pb2.ListPodResourcesRequest()
            if name == "List"
            else api_pb2.AllocatableResourcesRequest()
        )
        try:
            return getattr(stub, name)(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "error"
            raise PodResourcesUnavailable(
                f"kubelet pod-resources {name} failed: {code} {exc.details() or ''}".strip()
            ) from None

    def allocations(self) -> dict[str, list[PodRef]]:
        """{device UUID: the containers it is allocated to} for GPU resources (``List``)."""
        out: dict[str, list[PodRef]] = {}
        for pod in self._call("List").pod_resources:
            for container in pod.containers:
                for devices in container.devices:
                    if not devices.resource_name.startswith(GPU_RESOURCE_PREFIXES):
                        continue
                    ref = PodRef(pod.namespace, pod.name, container.name)
                    for device_id in devices.device_ids:
                        holders = out.setdefault(device_uuid(device_id), [])
                        if ref not in holders:
                            holders.append(ref)
        return out

    def allocatable(self) -> dict[str, str]:
        """{device UUID: resource name} the kubelet may allocate (``GetAllocatableResources``)."""
        out: dict[str, str] = {}
        for devices in self._call("GetAllocatableResources").devices:
            if devices.resource_name.startswith(GPU_RESOURCE_PREFIXES):
                for device_id in devices.device_ids:
                    out[device_uuid(device_id)] = devices.resource_name
        return out

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None
