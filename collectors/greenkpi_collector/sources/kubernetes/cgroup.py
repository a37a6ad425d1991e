"""A process's pod from its cgroup: the kubelet puts every container under a kubepods path that
carries the pod's UID (the only pod identity a PID has).

cgroup v1 (cgroupfs driver):   ``11:devices:/kubepods/burstable/pod<uid>/<container id>``
cgroup v2 (systemd driver):    ``0::/kubepods.slice/kubepods-burstable.slice/
                                 kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope``
"""

from __future__ import annotations

import re
from pathlib import Path

_POD = re.compile(
    r"kubepods.*?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)
_CONTAINER = re.compile(r"(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$")


def pod_of_cgroup(text: str) -> tuple[str, str | None] | None:
    """(pod UID, container id or None) from a /proc/<pid>/cgroup text, None outside kubepods."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        found = _POD.search(path)
        if found is None:
            continue
        container = _CONTAINER.search(path.rstrip("/"))
        return found.group(1).replace("_", "-"), container.group(1) if container else None
    return None


def pod_of_pid(pid: int, proc_root: str = "/proc") -> tuple[str, str | None] | None:
    """The pod UID (and container id) of a host PID; None if gone or not in a pod."""
    try:
        text = (Path(proc_root) / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    return pod_of_cgroup(text)
