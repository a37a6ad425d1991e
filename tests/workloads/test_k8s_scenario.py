"""Issue 13, done means: pods on a simulated Kubernetes node, measured by the collector's own
windows (kubelet pod-resources over a real gRPC unix socket, labels from a local API server, PIDs
to pods through cgroup files), posted through the ingest API, mapped by ``k8s-namespace`` /
``k8s-label`` identity mappings and rolled up. Runs on both layers (SQLite: the Python rollup;
PostgreSQL: the SQL rollup, and a test that both store the same rows).

The node (tests/testsupport/k8s_node.py; one 60 s window, hour H + 10 min, two 30 s intervals of
600 J per GPU = 1,200 J per GPU; site paris-dc: PUE 1.3, FR 33.4811 gCO2e/kWh (direct); token default team
vision):
- GPU-T, time-sliced, busy 90 %: processes 101 (vision/train-a, SM 60 %), 202 (nlp/serve-b,
  SM 20 %), 303 (a host process, SM 20 %): by utilization 720 / 240 / 240 J.
- GPU-M, MIG (slices MIG-M2 -> train-a, MIG-M1 -> serve-b), processes 101 and 202, no per-process
  utilization: equally, 600 / 600 J.
- GPU-I held by vision/idle-c, no process, 0 % busy: 1,200 J allocated-idle (idle-c's waste).
Mappings: ``k8s-namespace vision`` -> team vision; ``k8s-label team=nlp`` -> team nlp;
``k8s-label app.kubernetes.io/name`` -> the label's value as the model.

Hand-worked answers (1 kWh = 3.6e6 J):
- vision/train-a: team vision, model resnet50, run ``k8s:prod-eu:vision/train-a``,
  720 + 600 = 1,320 J = 3.6667e-4 kWh, no waste.
- nlp/serve-b: team nlp, model bert, run ``bert-serve-7`` (its greenkpi.io/run annotation),
  240 + 600 = 840 J = 2.3333e-4 kWh.
- vision/idle-c: team vision, no model (no app label), run ``k8s:prod-eu:vision/idle-c``,
  1,200 J = 3.3333e-4 kWh, all of it allocated-idle waste: 3.3333e-4 x 1.3 x 33.4811 / 1000
  = 1.45085e-5 kgCO2e; 60 s = 1/60 GPU-h wasted.
- the host process: 240 J unattributed, the host's team vision, no run.
- Before the mappings exist, serve-b's 840 J sit with vision as unmapped; adding them re-attributes
  the stored hour (history), moving it to nlp.
- Scope 2 location-based CO2e = kWh x 1.3 x 33.4811 / 1000: train-a 1.59593e-5 kg, serve-b
  1.01562e-5 kg, idle-c 1.45085e-5 kg. GPUs: train-a 2 (GPU-T, GPU-M), serve-b 2, idle-c 1.
- Split rules (the pods page's "Split"): train-a and serve-b "MIG slice" (GPU-M) and
  "utilization split" (GPU-T); idle-c "allocated, idle".
"""

from __future__ import annotations

import http.server
import threading
from concurrent import futures
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from greenkpi_collector.sources.base import ProcUse, Reading
from greenkpi_collector.sources.kubernetes.apiserver import PodCache
from greenkpi_collector.sources.kubernetes.attributor import KubeAttributor
from greenkpi_collector.sources.kubernetes.podresources import PodResourcesClient
from greenkpi_collector.sources.kubernetes.podresources_v1 import api_pb2_grpc
from greenkpi_collector.windows import DeviceWindow
from testsupport.k8s_node import CID_A, CID_B, UID_A, UID_B, ApiServer, Kubelet, fake_proc

from greenkpi.ingest.models import SchedulerJob
from greenkpi.inventory.mappings import mapping_save
from greenkpi.kpis import services
from greenkpi.kpis.attribution import mapping_changes_apply
from greenkpi.kpis.models import HourlyRollup
from greenkpi.lib.periods import hour_floor
from greenkpi_schema.v1 import format_time, sample_to_json

J_PER_KWH = 3.6e6
WASTE_KG = 1200 / J_PER_KWH * 1.3 * (17212.96 / 514.11) / 1000


@pytest.fixture
def hour() -> datetime:
    return hour_floor(datetime.now(UTC) - timedelta(hours=3))


@pytest.fixture
def node_batch(tmp_path, hour):
    """The node's windows, as the collector builds them, in one batch body."""
    sock = tmp_path / "kubelet.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(Kubelet(), server)
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    ApiServer.mode, ApiServer.seen = "ok", []
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    proc = tmp_path / "proc"
    fake_proc(
        proc,
        101,
        f"0::/kubepods.slice/kubepods-pod{UID_A.replace('-', '_')}.slice/"
        f"cri-containerd-{CID_A}.scope\n",
    )
    fake_proc(proc, 202, f"11:devices:/kubepods/besteffort/pod{UID_B}/{CID_B}\n")
    fake_proc(proc, 303, "0::/system.slice/sshd.service\n")
    try:
        attributor = KubeAttributor(
            None,
            pods=PodResourcesClient(str(sock)),
            cache=PodCache("gpu-node-7", url=f"http://127.0.0.1:{http_server.server_address[1]}"),
            cluster="prod-eu",
            mig_parent={"MIG-M1": "GPU-M", "MIG-M2": "GPU-M"},
            proc_root=str(proc),
        )
        attributor.refresh()
        t0 = (hour + timedelta(minutes=10)).timestamp()
        gpus = {
            "GPU-T": ((ProcUse(101, 0.6), ProcUse(202, 0.2), ProcUse(303, 0.2)), 0.9),
            "GPU-M": ((ProcUse(101), ProcUse(202)), None),
            "GPU-I": ((), 0.0),
        }
        samples = []
        for uuid, (procs, busy) in gpus.items():
            first = Reading(uuid, "gpu", "counter", counter=0, procs=())
            window = DeviceWindow(uuid, "gpu", t0, t0, first, 0)
            for i in (1, 2):
                r = Reading(uuid, "gpu", "counter", counter=600 * i, busy=busy, procs=procs)
                window.add(
                    r, t0 + 30 * i, attributor.resolver(uuid), attributor.allocated(uuid, t0)
                )
            samples.append(sample_to_json(window.close(attributor.describe)))
    finally:
        server.stop(grace=None)
        http_server.shutdown()
    return {
        "schema_version": 1,
        "host": {
            "hostname": "gpu-node-7",
            "agent_version": "test",
            "site": "paris-dc",
            "clock": format_time(datetime.now(UTC)),
            "devices": [{"uuid": u, "kind": "gpu", "model": "H100"} for u in gpus],
        },
        "samples": samples,
    }


def rows_by_run(org, hour) -> dict[str, list[HourlyRollup]]:
    out: dict[str, list[HourlyRollup]] = {}
    for row in HourlyRollup.objects.filter(organisation=org, hour=hour):
        out.setdefault(row.run_key, []).append(row)
    return out


def map_pods(acme) -> None:
    mapping_save(organisation=acme, kind="k8s-namespace", pattern="vision", team=acme.vision)
    mapping_save(organisation=acme, kind="k8s-label", pattern="team=nlp", team=acme.nlp)
    mapping_save(organisation=acme, kind="k8s-label", pattern="app.kubernetes.io/name")


def test_pods_get_their_team_model_run_and_waste_applied_to_history(
    acme, acme_token, post_batch, node_batch, hour
):
    _, secret = acme_token
    response = post_batch(secret, node_batch)
    assert response.status_code == 201, response.content
    pods = {j.job_id: j for j in SchedulerJob.objects.filter(organisation=acme, kind="k8s")}
    assert set(pods) == {"vision/train-a", "nlp/serve-b", "vision/idle-c"}
    assert pods["nlp/serve-b"].run_key == "bert-serve-7"
    assert pods["vision/train-a"].attributes["labels"]["app.kubernetes.io/name"] == "resnet50"

    # no mappings yet: every pod's energy stays with the host's team, counted unmapped
    assert services.window_recompute(organisation_id=acme.pk, hour=hour).status == "done"
    before = rows_by_run(acme, hour)["bert-serve-7"]
    assert {r.team_id for r in before} == {acme.vision.pk}
    assert sum(r.unmapped_energy_kwh for r in before) == pytest.approx(840 / J_PER_KWH)

    map_pods(acme)
    assert mapping_changes_apply() >= 1  # the stored hour is marked dirty
    services.windows_recompute_dirty()
    rows = rows_by_run(acme, hour)
    owners = {run: {(r.team_id, r.model_key) for r in group} for run, group in rows.items()}
    assert owners == {
        "k8s:prod-eu:vision/train-a": {(acme.vision.pk, "resnet50")},
        "bert-serve-7": {(acme.nlp.pk, "bert")},
        "k8s:prod-eu:vision/idle-c": {(acme.vision.pk, "")},
        "": {(acme.vision.pk, "")},
    }
    energy = {run: sum(r.energy_kwh for r in group) for run, group in rows.items()}
    assert energy == pytest.approx(
        {
            "k8s:prod-eu:vision/train-a": 1320 / J_PER_KWH,
            "bert-serve-7": 840 / J_PER_KWH,
            "k8s:prod-eu:vision/idle-c": 1200 / J_PER_KWH,
            "": 240 / J_PER_KWH,
        }
    )
    assert sum(r.unmapped_energy_kwh for g in rows.values() for r in g) == 0.0
    idle = rows["k8s:prod-eu:vision/idle-c"]
    assert sum(r.allocated_idle_energy_kwh for r in idle) == pytest.approx(1200 / J_PER_KWH)
    assert sum(r.allocated_idle_gpu_h for r in idle) == pytest.approx(1 / 60)
    wasted_kg = sum(
        r.allocated_idle_energy_kwh * r.pue * r.intensity_g_per_kwh / 1000 for r in idle
    )
    assert wasted_kg == pytest.approx(WASTE_KG)
    busy = [r for run, g in rows.items() if run != "k8s:prod-eu:vision/idle-c" for r in g]
    assert sum(r.allocated_idle_energy_kwh for r in busy) == 0.0


def test_k8s_mappings_are_validated_naming_the_field(acme, people, client):
    from django.core.exceptions import ValidationError

    for kind, pattern in (
        ("k8s-namespace", "Vision_Team"),
        ("k8s-label", "team==nlp"),
        ("k8s-label", "-bad/key"),
        ("k8s-label", "team=" + "x" * 64),
    ):
        with pytest.raises(ValidationError) as caught:
            mapping_save(organisation=acme, kind=kind, pattern=pattern, team=acme.nlp)
        assert "pattern" in caught.value.message_dict, (kind, pattern)
    # a key=value label mapping with no team, model key or run kind sets nothing
    with pytest.raises(ValidationError) as caught:
        mapping_save(organisation=acme, kind="k8s-label", pattern="team=nlp")
    assert "team" in caught.value.message_dict
    client.login(username="alice", password=people["password"])
    bad = client.post(
        "/api/v1/identity-mappings/",
        {"kind": "k8s-namespace", "pattern": "NLP", "team": "nlp"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "pattern" in bad.json()["fields"], bad.content
    made = client.post(
        "/api/v1/identity-mappings/",
        {"kind": "k8s-label", "pattern": "app.kubernetes.io/name"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content


def test_label_rules_resolve_like_the_slurm_ones():
    from greenkpi.inventory.attribution import Identity, resolve, rules_from

    rules = rules_from(
        [
            {"id": 1, "kind": "k8s-namespace", "pattern": "ml", "team_id": 10},
            {"id": 2, "kind": "k8s-label", "pattern": "team=nlp", "team_id": 20},
            {"id": 3, "kind": "k8s-label", "pattern": "app.kubernetes.io/name"},
            {"id": 4, "kind": "slurm-account", "pattern": "ml", "team_id": 30},
        ]
    )
    pod = Identity(kind="k8s", namespace="ml", labels=(("app.kubernetes.io/name", "bert"),))
    assert (resolve(pod, rules).team_id, resolve(pod, rules).model_key) == (10, "bert")
    labelled = Identity(kind="k8s", namespace="ml", labels=(("team", "nlp"),))
    assert resolve(labelled, rules).team_id == 20  # a label beats its namespace
    other = Identity(kind="k8s", namespace="ml", labels=(("team", "nlp-2"),))
    assert resolve(other, rules).team_id == 10  # key=value is exact
    slurm = Identity(kind="slurm", account="ml")
    assert resolve(slurm, rules).team_id == 30  # k8s rules never match Slurm jobs


@pytest.mark.postgres
def test_both_rollup_paths_store_the_same_rows_for_the_pods(
    acme, acme_token, post_batch, node_batch, hour
):
    from django.db import connection, transaction
    from django.utils import timezone

    from greenkpi.kpis import rollup, rollup_pg

    assert connection.vendor == "postgresql"
    _, secret = acme_token
    map_pods(acme)
    assert post_batch(secret, node_batch).status_code == 201

    def stored() -> list[dict]:
        rows = HourlyRollup.objects.filter(organisation=acme, hour=hour).values()
        return sorted(
            ({k: v for k, v in r.items() if k != "id"} for r in rows),
            key=lambda r: (r["device_id"], r["team_id"] or 0, r["model_key"], r["run_key"]),
        )

    now = timezone.now()
    with transaction.atomic():
        rollup.write_rows(rollup.build_rows(organisation_id=acme.pk, hour=hour, now=now))
    expected = stored()
    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=now)
    got = stored()
    assert got == expected
    assert {r["model_key"] for r in got} == {"resnet50", "bert", ""}


def location_kg(joules: float) -> float:
    return joules / J_PER_KWH * 1.3 * (17212.96 / 514.11) / 1000


@pytest.fixture
def mapped_node(acme, acme_token, post_batch, node_batch, hour):
    _, secret = acme_token
    map_pods(acme)
    mapping_changes_apply()
    assert post_batch(secret, node_batch).status_code == 201
    assert services.window_recompute(organisation_id=acme.pk, hour=hour).status == "done"
    return acme


def test_the_split_rules_are_stored_with_the_pods(mapped_node, node_batch):
    # the collector tags the MIG GPU's shares of the slices' pods, and only those
    tagged = {
        (sample["device_uuid"], share["scheduler"]["pod"])
        for sample in node_batch["samples"]
        for share in sample.get("shares", [])
        if share.get("tags", {}).get("gpu_sharing") == "mig"
    }
    assert tagged == {("GPU-M", "train-a"), ("GPU-M", "serve-b")}
    rules = {
        j.job_id: sorted(k for k in j.attributes if k.startswith("share_rule:"))
        for j in SchedulerJob.objects.filter(organisation=mapped_node, kind="k8s")
    }
    assert rules == {
        "vision/train-a": ["share_rule:mig-slice", "share_rule:utilization"],
        "nlp/serve-b": ["share_rule:mig-slice", "share_rule:utilization"],
        "vision/idle-c": ["share_rule:allocated-idle"],
    }


def test_the_api_lists_the_pods_hand_worked_and_scoped(mapped_node, people, client, hour):
    day = hour.date().isoformat()
    client.login(username="alice", password=people["password"])  # Acme admin: every team
    answer = client.get(f"/api/v1/k8s/pods/?from={day}&to={day}")
    assert answer.status_code == 200, answer.content
    pods = {f"{p['namespace']}/{p['pod']}": p for p in answer.json()["pods"]}
    assert next(iter(pods)) == "vision/idle-c"  # most wasted GPU-hours first
    got = {
        key: (p["team"], p["model_key"], p["run_key"], p["gpus"], p["share_rule_names"])
        for key, p in pods.items()
    }
    assert got == {
        "vision/train-a": (
            "vision",
            "resnet50",
            "k8s:prod-eu:vision/train-a",
            2,
            ["MIG slice", "utilization split"],
        ),
        "nlp/serve-b": ("nlp", "bert", "bert-serve-7", 2, ["MIG slice", "utilization split"]),
        "vision/idle-c": ("vision", "", "k8s:prod-eu:vision/idle-c", 1, ["allocated, idle"]),
    }
    for key, joules in (("vision/train-a", 1320), ("nlp/serve-b", 840), ("vision/idle-c", 1200)):
        pod = pods[key]
        assert pod["energy_kwh"] == pytest.approx(joules / J_PER_KWH), key
        assert pod["scope2_location_kgco2e"] == pytest.approx(location_kg(joules)), key
        assert pod["kgco2e"] == pytest.approx(
            pod["scope2_location_kgco2e"] + pod["embodied_kgco2e"]
        )
        assert pod["embodied_kgco2e"] > 0
    idle = pods["vision/idle-c"]
    assert idle["wasted_gpu_h"] == pytest.approx(1 / 60)
    assert idle["wasted_energy_kwh"] == pytest.approx(1200 / J_PER_KWH)
    assert idle["wasted_kgco2e"] == pytest.approx(WASTE_KG)
    assert pods["vision/train-a"]["wasted_gpu_h"] == 0.0
    by_ns = {g["key"]: (g["jobs"], g["wasted_gpu_h"]) for g in answer.json()["by_namespace"]}
    assert by_ns == {"vision": (2, pytest.approx(1 / 60)), "nlp": (1, 0.0)}
    only = client.get(f"/api/v1/k8s/pods/?from={day}&to={day}&namespace=nlp").json()
    assert [p["pod"] for p in only["pods"]] == ["serve-b"]
    assert client.get("/api/v1/k8s/pods/?range=1y").status_code == 400
    long = client.get(f"/api/v1/k8s/pods/?namespace={'n' * 64}")
    assert long.status_code == 400 and "namespace" in long.json()["fields"]

    client.login(username="victor", password=people["password"])  # vision viewer
    seen = client.get(f"/api/v1/k8s/pods/?from={day}&to={day}").json()
    assert sorted(p["pod"] for p in seen["pods"]) == ["idle-c", "train-a"]

    client.login(username="gary", password=people["password"])  # Globex admin
    assert client.get(f"/api/v1/k8s/pods/?org=acme&from={day}&to={day}").status_code == 404
    assert client.get(f"/api/v1/k8s/pods/?from={day}&to={day}").json()["pods"] == []
    client.logout()
    anonymous = client.get("/api/v1/k8s/pods/")
    assert anonymous.status_code in (401, 403)
    assert anonymous["Content-Type"].startswith("application/problem+json")


def test_the_pods_page_shows_the_same_numbers_scoped_like_every_page(
    mapped_node, people, client, hour
):
    day = hour.date().isoformat()
    query = f"org=acme&from={day}&to={day}"
    client.login(username="alice", password=people["password"])
    page = client.get(f"/k8s/pods/?{query}")
    assert page.status_code == 200
    html = page.content.decode()
    assert ">Kubernetes pods</a>" in html and 'aria-current="page">Kubernetes pods' in html
    assert html.index("vision/idle-c") < html.index("vision/train-a")  # most wasted first
    row = html[html.index('data-pod="vision/idle-c"') :]
    row = row[: row.index("</tr>")]
    assert "3.33e-4 kWh" in row and "0.0167" in row and "allocated, idle" in row, row
    assert "0.0145 g" in row  # wasted CO2e: 1.45085e-5 kg
    train = html[html.index('data-pod="vision/train-a"') :]
    train = train[: train.index("</tr>")]
    assert "resnet50" in train and "MIG slice, utilization split" in train, train
    assert "3.67e-4 kWh" in train and "0.0160 g" in train  # Scope 2 location: 1.59593e-5 kg
    assert "CO2e, total (SCI numerator)" in html and "Scope 2 location-based" in html
    filtered = client.get(f"/k8s/pods/?{query}&namespace=nlp").content.decode()
    assert "nlp/serve-b" in filtered and "vision/train-a" not in filtered

    client.login(username="victor", password=people["password"])  # vision viewer
    mine = client.get(f"/k8s/pods/?{query}").content.decode()
    assert "vision/train-a" in mine and "nlp/serve-b" not in mine

    client.login(username="gary", password=people["password"])  # another organisation
    assert client.get(f"/k8s/pods/?{query}").status_code == 404
