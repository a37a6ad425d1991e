"""Scheduler identities on shares through the real ingest endpoint (issue 11's payload side).

The backend's storage of the identity is helper work of its own; here: a malformed scheduler field
is a 400 naming it, with nothing stored, and a valid one (or an old payload) is accepted.
"""

from __future__ import annotations

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
