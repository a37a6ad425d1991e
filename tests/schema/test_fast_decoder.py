"""The msgspec fast path may only ever accept what v1's validator accepts, with equal values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson

from greenkpi_schema import Limits, ValidationFailed, parse_batch
from greenkpi_schema.fast_v1 import decode_batch_fast
from greenkpi_schema.v1 import OPTIONAL_MEASUREMENTS, scheduler_to_json

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_samples=50, max_window_s=120, max_future_s=600, max_age_s=86400)
SAMPLE_FIELDS = (
    "device_uuid",
    "device_kind",
    "start",
    "end",
    "energy_j",
    "method",
    *OPTIONAL_MEASUREMENTS,
)
ODD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    0.5,
    1.0000001,
    -0.0,
    1e15,
    1e16,
    2**62,
    2**31,
    2**63 - 1,
    "",
    "x",
    "gpu",
    "cpu",
    "host",
    "tpu",
    "counter",
    "estimate",
    "utilization",
    "equal",
    "2026-11-22T11:00:00Z",
    "2026-11-22T11:00:00",
    "2026-11-22T11:01:00+05:30",
    "2026-11-22 11:00:30+00:00",
    "2026-11-22T11:00:00.123456789Z",
    "2026-11-22T11:00:00z",
    "2026-11-22T12:20:00Z",
    "2025-01-01T00:00:00Z",
    "yesterday",
    "x" * 201,
    [],
    {},
    [1],
    {"a": "b"},
    {"a": 1},
    60,
    60.000001,
    301.0,
    -100.0,
    300.0,
    12000,
    11999.9995,
    "slurm",
    "k8s",
    "1234",
    "1234_7",
    "1234+1",
    "12a",
    "1234\n",
    "١٢",
    7,
    1234,
    2**32,
    "2026-11-22T10:00:00+01:00",
]
SCHEDULER_FIELDS = (
    "kind",
    "cluster",
    "job_id",
    "array_job_id",
    "array_task_id",
    "het_job_id",
    "het_job_offset",
    "user",
    "account",
    "partition",
    "qos",
    "job_name",
    "comment",
    "nodes",
    "start",
    "end",
    "complete",
)


def slurm_job(rng: random.Random) -> dict:
    job = {
        "kind": "slurm",
        "cluster": "c1",
        "job_id": "1234",
        "user": "ana",
        "account": "vision",
        "partition": "gpu",
        "qos": "normal",
        "job_name": "train",
        "comment": "greenkpi:model=m",
        "nodes": "n[01-02]",
        "start": "2026-11-22T11:00:00Z",
        "end": None,
    }
    form = rng.random()
    if form < 0.3:
        job.update(job_id="1234_7", array_job_id=1234, array_task_id=7)
    elif form < 0.5:
        job.update(job_id="1234+1", het_job_id=1234, het_job_offset=1)
    if rng.random() < 0.3:
        job["complete"] = False
    return job


def base_batch(rng: random.Random) -> dict:
    samples = []
    start = NOW - timedelta(minutes=30)
    for i in range(6):
        t0 = start + timedelta(seconds=60 * (i // 2))
        energy = rng.choice([12000.0, 6000, 0.0])
        samples.append(
            {
                "device_uuid": f"GPU-{i % 2}",
                "device_kind": "gpu",
                "start": t0.isoformat().replace("+00:00", "Z"),
                "end": (t0 + timedelta(seconds=60)).isoformat().replace("+00:00", "Z"),
                "energy_j": energy,
                "method": "counter",
                "power_avg_w": 200.0,
                "power_peak_w": 250,
                "util_busy": 0.5,
                "util_sm": 0.25,
                "mem_used_bytes": 10,
                "mem_total_bytes": 80,
                "temperature_c": 50.0,
                "idle_s": 12.5,
                "shares": [
                    {
                        "energy_j": energy * 0.75,
                        "team": "vision",
                        "model": "m",
                        "run": "r",
                        "method": "utilization",
                        "pid": 7,
                        "tags": {"k": "v"},
                    },
                    {"energy_j": energy * 0.125, "method": "unattributed"},
                    {
                        "energy_j": energy * 0.125,
                        "method": rng.choice(["allocated-idle", "utilization"]),
                        "run": "slurm:c1:1234",
                        "scheduler": slurm_job(rng),
                    },
                ],
            }
        )
    return {
        "schema_version": 1,
        "host": {
            "hostname": "h",
            "agent_version": "1",
            "clock": NOW.isoformat(),
            "devices": [{"uuid": "GPU-0", "kind": "gpu"}],
        },
        "samples": samples,
    }


def mutate(batch: dict, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        if not isinstance(batch["samples"], list) or not batch["samples"]:
            return
        sample = rng.choice(batch["samples"])
        if not isinstance(sample, dict):
            return
        if not isinstance(batch["host"], dict):
            batch["host"] = {}
        if not isinstance(sample.get("shares"), list) or not sample["shares"]:
            sample["shares"] = [{"energy_j": 0.0}]
        roll = rng.random()
        if roll < 0.6:
            sample[rng.choice(SAMPLE_FIELDS)] = rng.choice(ODD_VALUES)
        elif roll < 0.75:
            share = rng.choice(sample["shares"])
            if not isinstance(share, dict):
                continue
            share[rng.choice(["energy_j", "team", "method", "pid", "tags", "model"])] = rng.choice(
                ODD_VALUES
            )
        elif roll < 0.8:
            share = sample["shares"][-1]
            if not isinstance(share, dict):
                continue
            job = share.get("scheduler")
            if not isinstance(job, dict):
                share["scheduler"] = rng.choice(ODD_VALUES)
            elif rng.random() < 0.1:
                del share["scheduler"]  # legal unless the share is allocated-idle
            elif rng.random() < 0.8:
                job[rng.choice(SCHEDULER_FIELDS)] = rng.choice(ODD_VALUES)
            else:
                job.pop(rng.choice(SCHEDULER_FIELDS), None)
        elif roll < 0.85:
            sample.pop(rng.choice(SAMPLE_FIELDS), None)
        elif roll < 0.92:
            batch["host"][rng.choice(["hostname", "clock", "site", "spool_depth"])] = rng.choice(
                ODD_VALUES
            )
        else:
            batch[rng.choice(["schema_version", "samples"])] = rng.choice(ODD_VALUES)


def as_tuple(sample) -> tuple:
    shares = tuple(
        (
            s.energy_j,
            s.method,
            s.team,
            s.model,
            s.run,
            s.pid,
            tuple(sorted((s.tags or {}).items())),
            scheduler_to_json(s.scheduler) if s.scheduler else None,
        )
        for s in sample.shares
    )
    return (*(getattr(sample, f) for f in SAMPLE_FIELDS), shares)


def test_a_valid_batch_takes_the_fast_path_with_the_same_values():
    batch = base_batch(random.Random(1))
    fast = decode_batch_fast(orjson.dumps(batch), now=NOW, limits=LIMITS)
    slow = parse_batch(batch, now=NOW, limits=LIMITS)
    assert fast is not None
    assert [as_tuple(s) for s in fast.samples] == [as_tuple(s) for s in slow.samples]
    assert fast.host == slow.host


def test_whatever_the_fast_path_accepts_v1_accepts_identically():
    rng = random.Random(20261122)
    accepted_fast = rejected = 0
    for _ in range(4000):
        batch = base_batch(rng)
        mutate(batch, rng)
        body = orjson.dumps(batch)
        fast = decode_batch_fast(body, now=NOW, limits=LIMITS)
        try:
            slow = parse_batch(orjson.loads(body), now=NOW, limits=LIMITS)
        except ValidationFailed:
            slow = None
        if fast is None:
            rejected += 1
            continue
        accepted_fast += 1
        assert slow is not None, body
        assert [as_tuple(s) for s in fast.samples] == [as_tuple(s) for s in slow.samples], body
        assert fast.host == slow.host
    # Both branches were exercised: the property was tested, not vacuously true.
    assert accepted_fast > 200
    assert rejected > 1000
