"""Schemathesis hooks (SCHEMATHESIS_HOOKS): valid ingest batches, often, in positive generation.

Schemathesis draws ingest bodies from the JSON schema, which cannot state the cross-field rules
(windows in the recent past, shares adding up to the window's energy, no repeated window per
device), so almost every generated batch is a 400 and only the served three-sample example reached
storage. Here three in four positive ingest cases get their body replaced by a batch built to pass
every rule: several devices, runs of contiguous windows, and shares (teams of the fuzzed
organisation, models, runs, tags) that add up. Negative cases are left alone: a valid body there
would be a false "negative data accepted" failure. Hostnames, device UUIDs and idempotency keys
are fresh, so two batches rarely claim the same window of the same device or replay each other.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

INGEST_PATH = "/api/v1/ingest/"
TEAMS = (None, "vision", "nlp")  # the fuzzed organisation's teams (tests/conftest.py: acme)
MODELS = (None, "resnet50", "bert-base", "llama-ft")
KINDS = ("gpu", "cpu", "dram", "host")
SHARE_METHODS = ("utilization", "equal", "declared", "unattributed")
SAMPLE_METHODS = ("counter", "power_integral", "estimate")
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=12)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@st.composite
def shares_of(draw: Any, energy_j: float) -> list[dict]:
    """0-4 shares whose energies add up to the window's (the last one takes the remainder)."""
    count = draw(st.integers(0, 4))
    if count == 0:
        return []
    weights = draw(st.lists(st.integers(1, 100), min_size=count, max_size=count))
    shares = []
    left = energy_j
    for index, weight in enumerate(weights):
        part = left if index == count - 1 else energy_j * weight / sum(weights)
        left -= part
        share: dict[str, Any] = {"energy_j": part, "method": draw(st.sampled_from(SHARE_METHODS))}
        for field, choices in (("team", TEAMS), ("model", MODELS)):
            value = draw(st.sampled_from(choices))
            if value is not None:
                share[field] = value
        if draw(st.booleans()):
            share["run"] = "run-" + draw(NAME)
        if draw(st.booleans()):
            share["tags"] = {"stage": draw(st.sampled_from(("train", "eval", "serve")))}
        shares.append(share)
    return shares


@st.composite
def valid_batches(draw: Any) -> dict:
    """1-6 devices x 1-20 contiguous 10-60 s windows, ending 1-120 minutes ago."""
    now = datetime.now(UTC).replace(microsecond=0)
    end = now - timedelta(minutes=draw(st.integers(1, 120)))
    samples = []
    for device in range(draw(st.integers(1, 6))):
        uuid = f"FUZZ-{draw(NAME)}-{device}"
        kind = draw(st.sampled_from(KINDS))
        method = draw(st.sampled_from(SAMPLE_METHODS))
        step = draw(st.integers(10, 60))
        windows = draw(st.integers(1, 20))
        for index in range(windows):
            start = end - timedelta(seconds=step * (windows - index))
            energy = draw(st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
            sample: dict[str, Any] = {
                "device_uuid": uuid,
                "device_kind": kind,
                "start": _iso(start),
                "end": _iso(start + timedelta(seconds=step)),
                "energy_j": energy,
                "method": method,
                "power_avg_w": energy / step,
                "util_busy": draw(st.floats(0, 1)),
                "shares": draw(shares_of(energy)),
            }
            samples.append(sample)
    return {
        "schema_version": 1,
        "host": {"hostname": f"fuzz-{draw(NAME)}", "agent_version": "0.1.0", "clock": _iso(now)},
        "samples": samples,
    }


def _with_body(case: Any, body: dict) -> Any:
    """The case with a valid body, a fresh Idempotency-Key (generated keys repeat, and a repeated
    key replays the first answer: nothing new stored) and no Content-Encoding (gzip would
    promise a compressed body)."""
    # Each flatmap call gets a fresh case, so setting it is safe (Case.__setattr__ marks the
    # metadata for revalidation; a Case cannot be copy.copy'd).
    headers = {
        name: value
        for name, value in (case.headers or {}).items()
        if name.lower() not in ("idempotency-key", "content-encoding")
    }
    headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
    case.headers = headers
    case.body = body
    return case


@schemathesis.hook.apply_to(path=INGEST_PATH, method="POST")
def flatmap_case(context: Any, case: Any) -> Any:
    meta = getattr(case, "meta", None)
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return st.just(case)
    # Three in four positive cases valid: drawing the schema's own case is the slow part, so
    # most of them are worth storing; the rest still probe the cross-field rules (a 400).
    valid = valid_batches().map(lambda body: _with_body(case, body))
    return st.sampled_from((True, True, True, False)).flatmap(
        lambda replace: valid if replace else st.just(case)
    )


_LOG = os.environ.get("SCHEMATHESIS_HOOKS_LOG")  # a file: one line per ingest answer


@schemathesis.hook.apply_to(path=INGEST_PATH, method="POST")
def after_call(context: Any, case: Any, response: Any) -> None:
    """With SCHEMATHESIS_HOOKS_LOG set: one line per ingest call (debugging the generator)."""
    if _LOG:
        body = case.body if isinstance(case.body, dict) else {}
        host = str((body.get("host") or {}).get("hostname", ""))[:20] if body else ""
        with open(_LOG, "a") as out:
            out.write(f"{response.status_code} {host} {response.text[:150]!r}\n")
