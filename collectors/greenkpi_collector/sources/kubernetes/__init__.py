"""Kubernetes pod attribution (issue 13): which pod and container held or used each GPU.

* ``podresources``: the kubelet's pod-resources API (gRPC over its unix socket, ``v1`` ``List`` and
  ``GetAllocatableResources``; client generated from the kubelet's own ``api.proto``, vendored in
  ``podresources_v1/``): device id (GPU or MIG UUID) -> the pods' containers it is allocated to.
* ``cgroup``: a process's pod UID from ``/proc/<pid>/cgroup`` (cgroup v1 and v2 kubepods paths), so
  processes on a time-sliced or MPS GPU are split between pods by NVML's per-process utilization.
* ``apiserver``: the pods' namespace, labels and ``greenkpi.io/*`` annotations from the API server
  (in-cluster service account), in a bounded TTL cache that outlives 403s and timeouts.
* ``attributor``: the collector's Attributor taught all three.

Nothing here is imported unless Kubernetes attribution is on (grpcio is the ``kubernetes`` extra).
"""
