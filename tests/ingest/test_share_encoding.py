"""How ingest encodes a window's shares on its row (ingest/services.py ``_rows``)."""

from __future__ import annotations

import orjson
from django.utils import timezone

from greenkpi.ingest import services

POD = {"kind": "k8s", "namespace": "vision", "pod": "train-0", "container": "trainer"}


def test_a_shares_keys_come_in_the_order_jsonb_stores_them(make_batch):
    # Every key a share can carry, so each one's place is checked: PostgreSQL sorts an object's
    # keys (all one letter here) when it parses jsonb, and sorted input costs it one pass.
    share = {
        "energy_j": 12_000.0,
        "method": "utilization",
        "team": "vision",
        "model": "resnet50",
        "run": "run-7",
        "pid": 4242,
        "tags": {"stage": "train"},
        "scheduler": POD,
    }
    body = orjson.dumps(make_batch(devices=1, windows=1, shares=[share]))
    batch = services.decode_batch(body, now=timezone.now())
    devices = {sample.device_uuid: 1 for sample in batch.samples}
    rows, with_jobs, jobs = services._rows(batch, devices, {"vision": 7}, batch_id=3)
    [encoded] = rows[0][-1]
    assert list(encoded) == ["e", "g", "j", "k", "m", "p", "r", "t"]
    assert encoded["e"] == 12_000.0 and encoded["t"] == 7 and encoded["k"] == "utilization"
    assert with_jobs == [encoded] and list(jobs) == [encoded["j"]]
