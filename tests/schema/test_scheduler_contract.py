"""The scheduler identity on shares (issues 11 and 13): old payloads still validate, Slurm jobs and
Kubernetes pods (kind "k8s", additive) as designed.

Every case runs through both decoders: v1's hand-written validator (the source of truth, which
names the problem) and the msgspec fast path, which must accept exactly the same valid bodies.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from greenkpi_schema import K8sPod, Limits, SlurmJob, ValidationFailed, parse_batch
from greenkpi_schema.fast_v1 import decode_batch_fast
from greenkpi_schema.v1 import batch_to_json, k8s_run_key, scheduler_to_json

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LIMITS = Limits()

# A body exactly as collectors before issue 11 sent it (docs/api.md's example, shortened).
OLD_BODY = {
    "schema_version": 1,
    "host": {"hostname": "gpu-node-7", "agent_version": "0.1.0", "clock": "2026-11-22T11:59:00Z"},
    "samples": [
        {
            "device_uuid": "GPU-5d3c",
            "device_kind": "gpu",
            "start": "2026-11-22T11:00:00Z",
            "end": "2026-11-22T11:01:00Z",
            "energy_j": 30450.0,
            "method": "counter",
            "shares": [
                {
                    "energy_j": 20300.0,
                    "method": "utilization",
                    "team": "vision",
                    "model": "resnet50",
                    "run": "r-118",
                    "pid": 4121,
                    "tags": {"stage": "train"},
                },
                {"energy_j": 10150.0, "method": "unattributed"},
            ],
        }
    ],
}

FULL_JOB = {
    "kind": "slurm",
    "cluster": "hpc1",
    "job_id": "4242_7",
    "array_job_id": 4242,
    "array_task_id": 7,
    "user": "ana",
    "account": "vision-lab",
    "partition": "gpu",
    "qos": "normal",
    "job_name": "train-resnet",
    "comment": "greenkpi:model=resnet50",
    "nodes": "gpu[01-02]",
    "start": "2026-11-22T10:30:00+01:00",
    "end": None,
}


def new_body(job: object = None, method: str = "utilization") -> dict:
    body = copy.deepcopy(OLD_BODY)
    shares = body["samples"][0]["shares"]
    shares[1] = {"energy_j": 10150.0, "method": method, "run": "slurm:hpc1:4242_7"}
    if job is not None:
        shares[1]["scheduler"] = job
    return body


def both(body: dict):
    """(v1 result or its error set, fast path result or None)."""
    fast = decode_batch_fast(orjson.dumps(body), now=NOW, limits=LIMITS)
    try:
        slow = parse_batch(body, now=NOW, limits=LIMITS)
    except ValidationFailed as exc:
        return {(e.pointer, e.code) for e in exc.errors}, fast
    return slow, fast


def test_an_old_payload_validates_unchanged_on_both_paths():
    slow, fast = both(OLD_BODY)
    assert fast is not None and not isinstance(slow, set)
    for batch in (slow, fast):
        assert [s.scheduler for s in batch.samples[0].shares] == [None, None]
    # And it serialises back to exactly what was sent: nothing new appears on the wire.
    assert batch_to_json(slow)["samples"] == OLD_BODY["samples"]


def test_a_full_slurm_job_is_accepted_with_equal_values_on_both_paths():
    slow, fast = both(new_body(FULL_JOB))
    assert not isinstance(slow, set) and fast is not None
    job = slow.samples[0].shares[1].scheduler
    assert isinstance(job, SlurmJob)
    assert job.kind == "slurm" and job.job_id == "4242_7" and job.array_task_id == 7
    assert job.start == datetime(2026, 11, 22, 9, 30, tzinfo=UTC) and job.start.tzinfo is UTC
    assert job.complete is True
    fast_job = fast.samples[0].shares[1].scheduler
    assert scheduler_to_json(fast_job) == scheduler_to_json(job)
    assert fast_job.start.tzinfo is UTC
    # Round trip: what the collector builds is what the server parses.
    again = parse_batch(orjson.loads(orjson.dumps(batch_to_json(slow))), now=NOW, limits=LIMITS)
    assert again.samples[0].shares[1].scheduler == job


def test_a_failed_lookup_sends_what_is_known_with_complete_false():
    slow, fast = both(
        new_body({"kind": "slurm", "cluster": "hpc1", "job_id": "99", "complete": False})
    )
    assert not isinstance(slow, set) and fast is not None
    job = slow.samples[0].shares[1].scheduler
    assert (job.job_id, job.complete, job.account) == ("99", False, None)
    assert scheduler_to_json(job) == {
        "kind": "slurm",
        "cluster": "hpc1",
        "job_id": "99",
        "complete": False,
    }


def test_het_components_and_allocated_idle_shares_are_accepted():
    job = {"kind": "slurm", "cluster": "c", "job_id": "10+1", "het_job_id": 10, "het_job_offset": 1}
    slow, fast = both(new_body(job, method="allocated-idle"))
    assert not isinstance(slow, set) and fast is not None
    assert slow.samples[0].shares[1].method == "allocated-idle"


def pointer(field: str) -> str:
    return f"/samples/0/shares/1/scheduler/{field}"


BAD = [
    ({**FULL_JOB, "kind": "pbs"}, pointer("kind"), "choice"),
    ({k: v for k, v in FULL_JOB.items() if k != "kind"}, pointer("kind"), "choice"),
    ({k: v for k, v in FULL_JOB.items() if k != "cluster"}, pointer("cluster"), "required"),
    ({**FULL_JOB, "cluster": ""}, pointer("cluster"), "type"),
    ({k: v for k, v in FULL_JOB.items() if k != "job_id"}, pointer("job_id"), "required"),
    ({**FULL_JOB, "job_id": 4242}, pointer("job_id"), "format"),
    ({**FULL_JOB, "job_id": "4242.batch"}, pointer("job_id"), "format"),
    ({**FULL_JOB, "job_id": "4242\n"}, pointer("job_id"), "format"),
    ({**FULL_JOB, "job_id": "4242_8"}, pointer("job_id"), "consistency"),
    ({**FULL_JOB, "job_id": "4242"}, pointer("job_id"), "consistency"),
    ({**FULL_JOB, "array_task_id": -1}, pointer("array_task_id"), "type"),
    ({**FULL_JOB, "array_task_id": 2**32}, pointer("array_task_id"), "type"),
    ({**FULL_JOB, "het_job_id": 4242}, pointer("job_id"), "consistency"),
    ({**FULL_JOB, "account": "a" * 101}, pointer("account"), "type"),
    ({**FULL_JOB, "comment": "c" * 501}, pointer("comment"), "type"),
    ({**FULL_JOB, "user": 7}, pointer("user"), "type"),
    ({**FULL_JOB, "start": "yesterday"}, pointer("start"), "time"),
    ({**FULL_JOB, "start": "2026-11-22T10:00:00"}, pointer("start"), "time"),
    ({**FULL_JOB, "end": "2026-11-22T09:00:00Z"}, pointer("end"), "order"),
    ({**FULL_JOB, "complete": "no"}, pointer("complete"), "type"),
    ("slurm:hpc1:1", "/samples/0/shares/1/scheduler", "type"),
]


@pytest.mark.parametrize(("job", "where", "code"), BAD)
def test_malformed_scheduler_fields_are_refused_with_a_pointer(job, where, code):
    errors, fast = both(new_body(job))
    assert errors == {(where, code)}
    assert fast is None


def test_an_allocated_idle_share_must_name_its_job():
    errors, fast = both(new_body(None, method="allocated-idle"))
    assert errors == {("/samples/0/shares/1/scheduler", "required")}
    assert fast is None


def test_unknown_fields_inside_the_job_are_ignored_like_everywhere_else():
    slow, fast = both(new_body({**FULL_JOB, "gres": "gpu:2"}))
    assert not isinstance(slow, set) and fast is not None


def test_window_times_stay_recent_while_job_times_may_be_old():
    # A job can have started weeks before the window (long training): only the window is bounded.
    old_start = (NOW - timedelta(days=60)).isoformat()
    slow, fast = both(new_body({**FULL_JOB, "start": old_start}))
    assert not isinstance(slow, set) and fast is not None


# Kubernetes pods (issue 13): kind "k8s" is a second object shape in the same union.

POD = {
    "kind": "k8s",
    "cluster": "prod-eu",
    "namespace": "vision",
    "pod": "train-resnet-7f9c-0",
    "container": "trainer",
    "uid": "0b7c6f1e-3d2a-4c5b-9e8f-112233445566",
    "labels": {"team": "vision", "app.kubernetes.io/name": "resnet50"},
    "annotations": {"greenkpi.io/run": "resnet50-2026-11-22"},
    "start": "2026-11-22T10:30:00+01:00",
}


def test_old_and_slurm_payloads_still_validate_with_k8s_in_the_union():
    for body in (OLD_BODY, new_body(FULL_JOB)):
        slow, fast = both(body)
        assert not isinstance(slow, set) and fast is not None


def test_a_full_pod_is_accepted_with_equal_values_on_both_paths():
    slow, fast = both(new_body(POD))
    assert not isinstance(slow, set) and fast is not None
    pod = slow.samples[0].shares[1].scheduler
    assert isinstance(pod, K8sPod)
    assert (pod.kind, pod.job_id, pod.container) == ("k8s", "vision/train-resnet-7f9c-0", "trainer")
    assert pod.labels["app.kubernetes.io/name"] == "resnet50"
    fast_pod = fast.samples[0].shares[1].scheduler
    assert fast_pod.kind == "k8s" and fast_pod.job_id == pod.job_id
    assert scheduler_to_json(fast_pod) == scheduler_to_json(pod)
    assert fast_pod.start.tzinfo is pod.start.tzinfo
    again = parse_batch(orjson.loads(orjson.dumps(batch_to_json(slow))), now=NOW, limits=LIMITS)
    assert again.samples[0].shares[1].scheduler == pod


def test_a_minimal_pod_and_an_idle_allocation():
    minimal = {"kind": "k8s", "namespace": "nlp", "pod": "bert-0", "complete": False}
    slow, fast = both(new_body(minimal, method="allocated-idle"))
    assert not isinstance(slow, set) and fast is not None
    pod = slow.samples[0].shares[1].scheduler
    assert scheduler_to_json(pod) == minimal
    assert pod.labels == {} and pod.complete is False


def test_run_key_is_the_pod_unless_a_label_or_annotation_names_one():
    pod = K8sPod(namespace="nlp", pod="bert-0")
    assert k8s_run_key(pod) == "k8s:nlp/bert-0"
    pod.cluster = "prod-eu"
    assert k8s_run_key(pod) == "k8s:prod-eu:nlp/bert-0"
    pod.annotations = {"greenkpi.io/run": "from-annotation"}
    assert k8s_run_key(pod) == "from-annotation"
    pod.labels = {"greenkpi.io/run": "from-label"}
    assert k8s_run_key(pod) == "from-label"


BAD_PODS = [
    ({k: v for k, v in POD.items() if k != "namespace"}, pointer("namespace"), "required"),
    ({k: v for k, v in POD.items() if k != "pod"}, pointer("pod"), "required"),
    ({**POD, "namespace": "Vision"}, pointer("namespace"), "format"),
    ({**POD, "namespace": "n" * 64}, pointer("namespace"), "format"),
    ({**POD, "namespace": "vision\n"}, pointer("namespace"), "format"),
    ({**POD, "pod": "-bad"}, pointer("pod"), "format"),
    ({**POD, "pod": 12}, pointer("pod"), "format"),
    ({**POD, "container": ""}, pointer("container"), "type"),
    ({**POD, "cluster": "c" * 101}, pointer("cluster"), "type"),
    ({**POD, "labels": ["team=vision"]}, pointer("labels"), "type"),
    ({**POD, "labels": {"team": 7}}, pointer("labels"), "type"),
    ({**POD, "labels": {"team": "v" * 64}}, pointer("labels"), "type"),
    ({**POD, "labels": {f"k{i}": "v" for i in range(65)}}, pointer("labels"), "type"),
    ({**POD, "annotations": {f"a{i}": "v" for i in range(17)}}, pointer("annotations"), "type"),
    ({**POD, "start": "2026-11-22T10:00:00"}, pointer("start"), "time"),
    ({**POD, "end": "2026-11-22T09:00:00Z"}, pointer("end"), "order"),
    ({**POD, "complete": 0}, pointer("complete"), "type"),
]


@pytest.mark.parametrize(("pod", "where", "code"), BAD_PODS)
def test_malformed_pod_fields_are_refused_with_a_pointer(pod, where, code):
    errors, fast = both(new_body(pod))
    assert errors == {(where, code)}
    assert fast is None


def test_unknown_fields_inside_the_pod_are_ignored():
    body = copy.deepcopy(new_body({**POD, "node": "gpu-7"}))
    slow, fast = both(body)
    assert not isinstance(slow, set) and fast is not None
