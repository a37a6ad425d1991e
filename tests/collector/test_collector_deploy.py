"""The shipped deployment files parse and agree with the collector's own rules."""

from __future__ import annotations

import configparser

import pytest
import yaml
from gkc_helpers import REPO
from greenkpi_collector.config import load

DEPLOY = REPO / "deploy"


def test_the_systemd_unit_keeps_the_spool_and_allows_a_clean_stop() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "greenkpi-collector.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("greenkpi-collector run")  # no token on argv
    assert service["StateDirectory"] == "greenkpi-collector"
    assert int(service["TimeoutStopSec"]) > 10 + 5  # timeout_s + shutdown_grace_s
    assert service["Restart"] == "on-failure"


def test_the_example_toml_is_a_valid_config() -> None:
    config = load({"config": str(DEPLOY / "systemd" / "greenkpi-collector.toml.example")}, {})
    assert config.server == "https://greenkpi.example.org" and config.token_file


def test_the_daemonset_runs_on_gpu_nodes_with_the_token_from_a_secret() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "greenkpi-collector.yaml").read_text()))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > 15 and spec["hostPID"] is True
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    (container,) = spec["containers"]
    assert container["args"] == ["run"]
    assert not any("token" in a for a in container["args"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["token"]["secret"]["defaultMode"] == 0o400
    assert volumes["state"]["hostPath"]["path"] == "/var/lib/greenkpi-collector"
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["collector.toml"]
    import tomllib

    assert tomllib.loads(config)["token_file"] == "/var/run/secrets/greenkpi/token"


def test_the_kustomize_base_gives_pod_attribution_least_privilege_and_read_only_mounts() -> None:
    """Issue 13's packaging, checked by parsing the base's files."""
    base = DEPLOY / "kubernetes"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    check_base(
        [
            d
            for name in kustomization["resources"]
            for d in yaml.safe_load_all((base / name).read_text())
        ]
    )


def test_the_kustomize_base_renders_with_kubectl_kustomize() -> None:
    """The same checks on what ``kubectl kustomize`` renders (.ci/run installs Debian's
    kubernetes-client, kubectl 1.20 with kustomize v2, when no kubectl is on PATH; checked with
    it and with kubectl 1.32 / kustomize v5): every namespaced object lands in greenkpi."""
    import os
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("kubectl missing: .ci/run installs Debian's kubernetes-client")
        pytest.skip("no kubectl (apt-get install kubernetes-client)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    check_base(docs)
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "greenkpi", doc["kind"]


def check_base(docs: list[dict]) -> None:
    kinds = {d["kind"]: d for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "ConfigMap"} <= set(
        kinds
    )
    (rule,) = kinds["ClusterRole"]["rules"]
    assert rule == {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    binding = kinds["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == kinds["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "greenkpi-collector", "namespace": "greenkpi"}
    ]
    spec = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/var/lib/kubelet/pod-resources", "/sys/class/powercap"):
        assert mounts[path]["readOnly"] is True
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == path
    # the only writable mount is the spool
    assert [m["mountPath"] for m in mounts.values() if not m.get("readOnly")] == [
        "/var/lib/greenkpi-collector"
    ]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    import tomllib

    from greenkpi_collector.config import load

    toml = tomllib.loads(kinds["ConfigMap"]["data"]["collector.toml"])
    assert toml["kubernetes"] == "auto"
    config = load({}, {"NODE_NAME": "gpu-node-7"})
    assert config.kubelet_socket.startswith(mounts["/var/lib/kubelet/pod-resources"]["mountPath"])
    assert config.kube_node == "gpu-node-7"
