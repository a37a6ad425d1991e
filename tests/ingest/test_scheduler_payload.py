"""Scheduler identities on shares through the real ingest endpoint (issue 11's payload side).

The backend's storage of the identity is helper work of its own; here: a malformed scheduler field
is a 400 naming it, with nothing stored, and a valid one (or an old payload) is accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from greenkpi.ingest.models import Sample

JOB = {
    "kind": "slurm",
    "cluster": "hpc1",
    "job_id": "77",
    "account": "vision-lab",
    "user": "ana",
}


def shares(job: object, method: str = "utilization") -> list[dict]:
    return [
        {"energy_j": 9000.0, "method": method, "run": "slurm:hpc1:77", "scheduler": job},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]


def test_a_malformed_scheduler_field_is_a_400_with_its_pointer(acme_token, post_batch, make_batch):
    _, secret = acme_token
    batch = make_batch(devices=1, windows=2, shares=shares({**JOB, "job_id": "77.batch"}))
    response = post_batch(secret, batch)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    pointers = {(e["pointer"], e["code"], e["sample_index"]) for e in response.json()["errors"]}
    assert pointers == {
        ("/samples/0/shares/0/scheduler/job_id", "format", 0),
        ("/samples/1/shares/0/scheduler/job_id", "format", 1),
    }
    assert Sample.objects.count() == 0


def test_an_allocated_idle_share_without_its_job_is_refused(acme_token, post_batch, make_batch):
    _, secret = acme_token
    batch = make_batch(devices=1, windows=1, shares=shares(None, method="allocated-idle"))
    response = post_batch(secret, batch)
    assert response.status_code == 400
    assert [e["pointer"] for e in response.json()["errors"]] == ["/samples/0/shares/0/scheduler"]
    assert Sample.objects.count() == 0


def test_valid_scheduler_shares_and_old_payloads_are_stored(acme_token, post_batch, make_batch):
    _, secret = acme_token
    new = make_batch(devices=1, windows=1, shares=shares(JOB, method="allocated-idle"))
    assert post_batch(secret, new).status_code == 201
    old = make_batch(hostname="old-node", devices=1, windows=1, shares=[{"energy_j": 12000.0}])
    assert post_batch(secret, old).status_code == 201
    assert Sample.objects.count() == 2


# Kubernetes pods (issue 13): the same table and link as Slurm jobs, one row per pod.
POD = {
    "kind": "k8s",
    "namespace": "vision",
    "pod": "train-resnet-0",
    "container": "trainer",
    "labels": {"team": "vision", "app.kubernetes.io/name": "resnet50"},
}


def test_a_malformed_pod_is_a_400_naming_the_field(acme_token, post_batch, make_batch):
    _, secret = acme_token
    pod = {**POD, "namespace": "Vision_Team"}
    batch = make_batch(devices=1, windows=1, shares=[{"energy_j": 12000.0, "scheduler": pod}])
    response = post_batch(secret, batch)
    assert response.status_code == 400, response.content
    assert [(e["pointer"], e["code"]) for e in response.json()["errors"]] == [
        ("/samples/0/shares/0/scheduler/namespace", "format")
    ]
    assert Sample.objects.count() == 0


def test_pod_shares_are_stored_like_jobs_with_their_run_key(acme_token, post_batch, make_batch):
    from greenkpi.ingest.models import SampleShare, SchedulerJob

    _, secret = acme_token
    named = {**POD, "pod": "bert-0", "annotations": {"greenkpi.io/run": "bert-sweep-3"}}
    batch = make_batch(
        devices=1,
        windows=2,
        shares=[
            {"energy_j": 8000.0, "method": "utilization", "scheduler": POD},
            {"energy_j": 4000.0, "method": "allocated-idle", "scheduler": named},
        ],
    )
    assert post_batch(secret, batch).status_code == 201
    jobs = {j.job_id: j for j in SchedulerJob.objects.all()}
    assert set(jobs) == {"vision/train-resnet-0", "vision/bert-0"}
    pod = jobs["vision/train-resnet-0"]
    assert (pod.kind, pod.cluster, pod.run_key) == ("k8s", "", "k8s:vision/train-resnet-0")
    assert pod.attributes["labels"] == POD["labels"]
    assert pod.attributes["container"] == "trainer"
    assert jobs["vision/bert-0"].run_key == "bert-sweep-3"
    runs = sorted(SampleShare.objects.values_list("run_key", "scheduler_job__job_id"))
    assert runs == [
        ("bert-sweep-3", "vision/bert-0"),
        ("bert-sweep-3", "vision/bert-0"),
        ("k8s:vision/train-resnet-0", "vision/train-resnet-0"),
        ("k8s:vision/train-resnet-0", "vision/train-resnet-0"),
    ]
    # a later batch without labels (API server down: complete=false) keeps the known labels
    later = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    again = make_batch(
        devices=1,
        windows=1,
        start=later,
        shares=[{"energy_j": 12000.0, "scheduler": {**POD, "labels": {}, "complete": False}}],
    )
    assert post_batch(secret, again).status_code == 201
    pod.refresh_from_db()
    assert pod.attributes["labels"] == POD["labels"] and pod.complete is False
