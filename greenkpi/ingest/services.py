"""Ingest one batch: idempotency, tenant scoping, host/device registration, one atomic write."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from greenkpi.ingest import windows, writers
from greenkpi.ingest.models import IngestBatch
from greenkpi.ingest.opening import DeviceFacts, Window, open_batch
from greenkpi.ingest.scheduler import JobFacts, JobKey, job_key, job_run_key, jobs_upsert
from greenkpi.ingest.text import refuse_nul_text
from greenkpi.inventory.models import CollectorToken, Device, Host, Site, Team
from greenkpi_schema import Batch, FieldError, Limits, ValidationFailed, parse_batch
from greenkpi_schema.fast_v1 import DecodedBatch, decode_batch_fast


@dataclass
class IngestResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class IdempotencyConflict(Exception):
    """The key was used before with a different body (HTTP 422)."""


def server_limits() -> Limits:
    return Limits(
        max_samples=settings.INGEST_MAX_SAMPLES,
        max_window_s=settings.INGEST_MAX_WINDOW_S,
        max_future_s=settings.INGEST_MAX_FUTURE_S,
        max_age_s=settings.INGEST_MAX_AGE_DAYS * 86400,
    )


# A batch as v1.parse_batch builds it, or as the msgspec fast path decodes it (same attributes).
AnyBatch = Batch | DecodedBatch


class MalformedJSON(ValueError):
    """The body is not JSON (HTTP 400)."""


def decode_batch(body: bytes, *, now: datetime) -> AnyBatch:
    """A validated batch from raw JSON bytes: the C fast path, or v1's full error report."""
    limits = server_limits()
    decoded = decode_batch_fast(body, now=now, limits=limits)
    if decoded is not None:
        return decoded
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(str(exc)) from None
    return parse_batch(data, now=now, limits=limits)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is decoded, checked and written.

    A batch of 1,000 samples allocates tens of thousands of container objects (structs, lists,
    dicts, row tuples), none of them in a reference cycle, and all freed by reference counting
    when the request ends; with the collector on, each 700 allocations trigger a collection that
    walks them (and every ~100th walks every object of the process), ~9 ms of CPU per batch of a
    ~40 ms path. Pausing it defers that work to after the request, when the batch is gone. If the
    collector was already off (another thread paused it) it is left as it was.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def ingest_batch(
    *,
    token: CollectorToken,
    idempotency_key: str,
    body: bytes,
    data: Any = None,
    now: datetime | None = None,
    sent_at: datetime | None = None,
) -> IngestResult:
    """Validate and store a decoded batch. Raises ValidationFailed (400) or IdempotencyConflict (422).

    The happy path costs no look-up of the key: claiming it (an INSERT ... ON CONFLICT) tells
    whether it was used, and only then is the stored answer read.
    """
    with gc_paused():
        return _ingest(token, idempotency_key, body, data, now or timezone.now(), sent_at)


def _ingest(
    token: CollectorToken,
    idempotency_key: str,
    body: bytes,
    data: Any,
    now: datetime,
    sent_at: datetime | None,
) -> IngestResult:
    digest = fingerprint(body)
    try:
        refuse_nul_text(body)
        batch = (
            decode_batch(body, now=now)
            if data is None
            else parse_batch(data, now=now, limits=server_limits())
        )
    except (ValidationFailed, MalformedJSON):
        # A replay of an accepted batch is answered as the first time, even if its windows
        # have since aged past the limits (or a team was renamed).
        stored = _stored_answer(token, idempotency_key, digest)
        if stored is not None:
            return stored
        raise
    if sent_at is not None:
        # A retried body carries the clock of its first attempt; X-Sent-At is this attempt's.
        batch.host.clock = sent_at
    try:
        return _store(token, idempotency_key, digest, batch, now, merge=False)
    except writers.DuplicateWindows:
        # Some windows were stored before (under another key): merge, keeping only new ones.
        return _store(token, idempotency_key, digest, batch, now, merge=True)


def _store(
    token: CollectorToken,
    key: str,
    digest: str,
    batch: AnyBatch,
    now: datetime,
    *,
    merge: bool,
) -> IngestResult:
    """One transaction: claim the key, register host and devices, write, record the answer.

    A batch naming a team the organisation lacks is refused here (ValidationFailed rolls the
    claim back), after the claim so that a replay is answered as the first time even if a team
    was renamed since.
    """
    with transaction.atomic():
        wanted = _wanted_teams(batch)
        kinds = _device_kinds(batch)
        if connection.vendor == "postgresql":
            opened = open_batch(
                token=token,
                key=key,
                digest=digest,
                batch=batch,
                now=now,
                device_uuids=list(kinds),
                team_slugs=sorted(wanted),
            )
            batch_id, host_id, teams = opened.batch_id, opened.host_id, opened.teams
            current: dict[str, DeviceFacts] | None = opened.devices
            stored: list[Window] | None = opened.stored
        else:
            batch_id = _claim_key(token, key, digest, now)
            host_id, teams, current, stored = None, {}, None, None
        if batch_id is None:
            # The key is taken: a replay, or a concurrent request that committed first (the
            # INSERT waited on its row lock). Answer as it was answered, or refuse another body.
            answer = _stored_answer(token, key, digest)
            assert answer is not None
            return answer
        if host_id is None:
            teams = _resolve_teams(token, wanted)
            host_id = _register_host(token, batch, now).pk
        _refuse_unknown_teams(batch, wanted, teams)
        devices, created = _register_devices(host_id, batch, now, kinds, current)
        if created:
            stored = None  # read them below, with the new devices' ids
        sample_rows, with_jobs, jobs = _rows(batch, devices, teams, batch_id)
        if jobs:
            _link_jobs(token.organisation_id, with_jobs, jobs, now)
        rows, origins = _hour_pieces(batch, sample_rows)
        replays = _refuse_overlaps(batch, rows, origins, devices, stored)
        if replays:
            kept = [i for i, row in enumerate(rows) if (row[0], row[1]) not in replays]
            rows, origins = [rows[i] for i in kept], [origins[i] for i in kept]
        written = writers.write_samples(rows, merge=merge)
        if not replays and len(written) == len(rows):
            accepted = len(batch.samples)  # every piece of every sample written (the usual batch)
        else:
            accepted = len(
                {origins[i] for i, row in enumerate(rows) if (row[0], row[1]) in written}
            )
        duplicates = len(batch.samples) - accepted
        skew = (now - batch.host.clock).total_seconds() if batch.host.clock else None
        body_out: dict[str, Any] = {
            "batch_id": batch_id,
            "host_id": host_id,
            "accepted": accepted,
            "duplicates": duplicates,
            "clock_skew_s": round(skew, 3) if skew is not None else None,
            "warnings": _warnings(batch, skew),
        }
        window_starts = [row[1] for row in rows]
        _finish(token, batch, batch_id, host_id, body_out, window_starts, now)
    return IngestResult(status=201, body=body_out)


def _finish(
    token: CollectorToken,
    batch: AnyBatch,
    batch_id: int,
    host_id: int,
    body_out: dict[str, Any],
    window_starts: list[datetime],
    now: datetime,
) -> None:
    """Mark the hours of new samples dirty (one upsert, committed with the samples: the KPI engine
    recomputes those rollup windows) and record the answer on the batch row: the last statements
    of the transaction.

    On PostgreSQL both go as one query string and, when this transaction is the connection's own
    (the outermost atomic block, as in a request), the COMMIT with them: one round trip instead of
    three; Django's commit at the end of the block then finds nothing left to commit. Nested in an
    outer transaction (tests, a caller's atomic block), the outer block commits. A failing
    statement or COMMIT raises here, inside the block, which rolls back as for any other error.
    """
    from greenkpi.kpis.dirty import mark_dirty_statement, windows_mark_dirty

    accepted = body_out["accepted"]
    update = {
        "host_id": host_id,
        "host_clock": batch.host.clock,
        "sample_count": len(batch.samples),
        "accepted": accepted,
        "duplicates": body_out["duplicates"],
        "status_code": 201,
    }
    if connection.vendor != "postgresql":
        if accepted:
            windows_mark_dirty(
                organisation_id=token.organisation_id, window_starts=window_starts, now=now
            )
        IngestBatch.objects.filter(pk=batch_id).update(**update, response=body_out)
        return
    statements = [
        f"UPDATE {IngestBatch._meta.db_table} "
        f"SET {', '.join(f'{name} = %s' for name in update)}, response = %s::jsonb WHERE id = %s"
    ]
    params: list[Any] = [*update.values(), orjson.dumps(body_out).decode(), batch_id]
    dirty = (
        mark_dirty_statement(
            organisation_id=token.organisation_id, window_starts=window_starts, now=now
        )
        if accepted
        else None
    )
    if dirty is not None:
        statements.insert(0, dirty[0])
        params = [*dirty[1], *params]
    if (
        len(connection.atomic_blocks) == 1
        and not connection.savepoint_ids
        and connection.commit_on_exit
    ):
        statements.append("COMMIT")
    # psycopg's client-side binding (Django's cursor class) sends this as one simple query.
    with connection.connection.cursor() as cur:
        cur.execute("; ".join(statements), params)


def _stored_answer(token: CollectorToken, key: str, digest: str) -> IngestResult | None:
    row = (
        IngestBatch.objects.filter(organisation_id=token.organisation_id, idempotency_key=key)
        .values("fingerprint", "status_code", "response")
        .first()
    )
    if row is None:
        return None
    if row["fingerprint"] != digest:
        raise IdempotencyConflict(key)
    return IngestResult(
        status=row["status_code"],
        body=row["response"],
        replayed=True,
        headers={"Idempotent-Replayed": "true"},
    )


def _claim_key(token: CollectorToken, key: str, digest: str, now: datetime) -> int | None:
    """Insert the batch row; None if another transaction holds or committed this key.

    On PostgreSQL the INSERT waits for a concurrent holder of the same key to finish, so concurrent
    replays are answered after the first commits, and exactly one of them writes.
    """
    table = IngestBatch._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {table} (organisation_id, token_id, idempotency_key, fingerprint, received_at, "
            f"sample_count, accepted, duplicates, status_code, response) "
            f"VALUES (%s, %s, %s, %s, %s, 0, 0, 0, 201, %s) "
            f"ON CONFLICT (organisation_id, idempotency_key) DO NOTHING RETURNING id",
            [token.organisation_id, token.pk, key, digest, now, "{}"],
        )
        row = cur.fetchone()
    return row[0] if row else None


def _wanted_teams(batch: AnyBatch) -> set[str]:
    """The team slugs the batch's shares name."""
    return {share.team for sample in batch.samples for share in sample.shares if share.team}


def _resolve_teams(token: CollectorToken, wanted: set[str]) -> dict[str, int]:
    """Team slugs → ids, only within the token's organisation (the ones found)."""
    if not wanted:
        return {}
    return dict(
        Team.objects.filter(organisation_id=token.organisation_id, slug__in=wanted).values_list(
            "slug", "id"
        )
    )


def _refuse_unknown_teams(batch: AnyBatch, wanted: set[str], found: dict[str, int]) -> None:
    """ValidationFailed (400) naming each share whose team the organisation does not have."""
    missing = wanted - found.keys()
    if missing:
        errors = [
            FieldError(
                f"/samples/{i}/shares/{j}/team",
                "unknown_team",
                f"no team {share.team!r} in this organisation",
                i,
            )
            for i, sample in enumerate(batch.samples)
            for j, share in enumerate(sample.shares)
            if share.team in missing
        ]
        raise ValidationFailed(errors[:100])


# Device.last_seen is bookkeeping at minute resolution (like a token's last_used_at): refreshing it
# on every batch would rewrite every device row of the host, and lock them, once per request.
DEVICE_LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def _register_host(token: CollectorToken, batch: AnyBatch, now: datetime) -> Host:
    """The batch's host, created on first sight, with the facts of this batch recorded."""
    facts = batch.host
    updates: dict[str, Any] = {
        "last_seen": now,
        "collector_version": facts.agent_version,
        "clock_skew_s": (now - facts.clock).total_seconds() if facts.clock else None,
        "spool_depth": facts.spool_depth,
        "source_errors": facts.source_errors,
    }
    host = Host.objects.filter(
        organisation_id=token.organisation_id, hostname=facts.hostname
    ).first()
    if host is None:
        Host.objects.bulk_create(
            [
                Host(
                    organisation_id=token.organisation_id,
                    hostname=facts.hostname,
                    default_team_id=token.default_team_id,
                    site_id=token.default_site_id,
                    first_seen=now,
                )
            ],
            ignore_conflicts=True,  # two first batches of a new host may race
        )
        host = Host.objects.get(organisation_id=token.organisation_id, hostname=facts.hostname)
    if facts.dropped_windows is not None:
        updates["dropped_windows"] = facts.dropped_windows
    if facts.site:
        site_id = (
            Site.objects.filter(organisation_id=token.organisation_id, name=facts.site)
            .values_list("id", flat=True)
            .first()
        )
        if site_id is not None:
            updates["site_id"] = site_id
    Host.objects.filter(pk=host.pk).update(**updates)
    for name, value in updates.items():
        setattr(host, name, value)
    return host


def _device_kinds(batch: AnyBatch) -> dict[str, str]:
    """uuid → kind of every device the batch mentions (its samples' and its host facts')."""
    kinds = {s.device_uuid: s.device_kind for s in batch.samples}
    for info in batch.host.devices:
        kinds.setdefault(info.uuid, info.kind)
    return kinds


def _register_devices(
    host_id: int,
    batch: AnyBatch,
    now: datetime,
    kinds: dict[str, str],
    current: dict[str, DeviceFacts] | None = None,
) -> tuple[dict[str, int], bool]:
    """uuid → device id for every device the batch mentions (``kinds``: their uuid → kind, as
    ``_device_kinds`` reads them), creating unknown ones; and whether any was created.

    In the steady state (known devices, unchanged facts, last_seen fresh) this is one SELECT, or
    none when ``current`` (the known devices, read by the opening statement) is given: model and
    power limit are compared here rather than with one UPDATE per device, and last_seen is
    refreshed only when older than DEVICE_LAST_SEEN_RESOLUTION.
    """
    facts = {d.uuid: d for d in batch.host.devices}
    if current is None:
        current = {
            uuid: (pk, model_name, power_limit_w, last_seen)
            for uuid, pk, model_name, power_limit_w, last_seen in Device.objects.filter(
                host_id=host_id, uuid__in=kinds.keys()
            ).values_list("uuid", "id", "model_name", "power_limit_w", "last_seen")
        }
    missing = [uuid for uuid in kinds if uuid not in current]
    if missing:
        Device.objects.bulk_create(
            [
                Device(
                    host_id=host_id,
                    uuid=uuid,
                    kind=kinds[uuid],
                    model_name=facts[uuid].model if uuid in facts else "",
                    power_limit_w=facts[uuid].power_limit_w if uuid in facts else None,
                    first_seen=now,
                )
                for uuid in missing
            ],
            ignore_conflicts=True,
        )
        current.update(
            (uuid, (pk, model_name, power_limit_w, last_seen))
            for uuid, pk, model_name, power_limit_w, last_seen in Device.objects.filter(
                host_id=host_id, uuid__in=missing
            ).values_list("uuid", "id", "model_name", "power_limit_w", "last_seen")
        )
    stale_before = now - DEVICE_LAST_SEEN_RESOLUTION
    touch: list[int] = []
    for uuid, (pk, model_name, power_limit_w, last_seen) in current.items():
        info = facts.get(uuid)
        if (
            info is not None
            and (info.model or info.power_limit_w is not None)
            and (model_name != info.model or power_limit_w != info.power_limit_w)
        ):
            Device.objects.filter(pk=pk).update(
                model_name=info.model, power_limit_w=info.power_limit_w, last_seen=now
            )
        elif last_seen is None or last_seen < stale_before:
            touch.append(pk)
    if touch:
        Device.objects.filter(pk__in=touch).update(last_seen=now)
    return {uuid: row[0] for uuid, row in current.items()}, bool(missing)


def _rows(
    batch: AnyBatch, devices: dict[str, int], teams: dict[str, int], batch_id: int
) -> tuple[list[tuple], list[dict[str, Any]], dict[JobKey, JobFacts]]:
    """Sample rows in COPY column order (shares on the row, encoded as columns.SHARE_KEYS says),
    the shares that name a scheduler job, and those jobs.

    A share naming a job carries the job's key under ``j``; ``_link_jobs`` swaps in the id once
    the jobs are stored (a share without one costs an attribute test here).
    """
    samples: list[tuple] = []
    with_jobs: list[dict[str, Any]] = []
    jobs: dict[JobKey, JobFacts] = {}
    append_sample = samples.append
    for s in batch.samples:
        encoded: list[dict[str, Any]] | None = None
        if s.shares:
            encoded = []
            for share in s.shares:
                # Empty values left out: they would be most of a share's stored bytes. Keys in
                # the order jsonb stores them (e g j k m p r t): PostgreSQL sorts an object's
                # keys when it parses one, and finds sorted ones sorted in a single pass.
                out: dict[str, Any] = {"e": share.energy_j}
                if share.tags:
                    out["g"] = share.tags
                job = getattr(share, "scheduler", None)
                run = share.run
                if job is not None:
                    key = job_key(job)
                    seen = jobs.get(key)
                    if seen is None:
                        jobs[key] = seen = JobFacts(job, s.start, s.start)
                    seen.see(job, s.start, share.tags, share.method)
                    out["j"] = key
                    with_jobs.append(out)
                    run = run or job_run_key(job)
                out["k"] = share.method
                if share.model:
                    out["m"] = share.model
                if share.pid is not None:
                    out["p"] = share.pid
                if run:
                    out["r"] = run
                if share.team:
                    out["t"] = teams[share.team]
                encoded.append(out)
        append_sample(
            (
                devices[s.device_uuid],
                s.start,
                s.end,
                s.energy_j,
                s.method,
                s.power_avg_w,
                s.power_peak_w,
                s.util_busy,
                s.util_sm,
                s.mem_used_bytes,
                s.mem_total_bytes,
                s.temperature_c,
                s.idle_s,
                batch_id,
                encoded,
            )
        )
    return samples, with_jobs, jobs


def _hour_pieces(batch: AnyBatch, rows: list[tuple]) -> tuple[list[tuple], list[int]]:
    """The rows cut at hour boundaries (ingest/windows.py), and the sample each piece is of.

    Two attribute tests per sample find the few windows that may straddle an hour; the rows are
    rebuilt only when one does."""
    origins = list(range(len(rows)))
    cut = {
        i: windows.hour_pieces(rows[i])
        for i, s in enumerate(batch.samples)
        if s.end.hour != s.start.hour or s.end.day != s.start.day
    }
    # A window that ends on the hour is one piece: the usual batch has no row to rebuild.
    cut = {i: pieces for i, pieces in cut.items() if len(pieces) > 1}
    if not cut:
        return rows, origins
    out: list[tuple] = []
    out_origins: list[int] = []
    for i, row in enumerate(rows):
        pieces = cut.get(i) or [row]
        out += pieces
        out_origins += [i] * len(pieces)
    return out, out_origins


def _refuse_overlaps(
    batch: AnyBatch,
    rows: list[tuple],
    origins: list[int],
    devices: dict[str, int],
    stored: list[Window] | None = None,
) -> set[tuple[int, datetime]]:
    """Raise ValidationFailed (400) if a window meets another of its device, in the batch or
    stored, other than as an exact replay; return the keys of exact replays (duplicates).

    The usual batch (each device's windows in order, after the stored ones) costs one pass here
    and one range scan of the key per device, which finds nothing (``stored``, when the opening
    statement read them already)."""
    if not rows:
        return set()  # a batch of no samples (a heartbeat) overlaps nothing
    if stored is None:
        low = min(row[1] for row in rows)
        stored = writers.stored_windows(
            devices=sorted({row[0] for row in rows}),
            start_after=low - timedelta(seconds=settings.INGEST_MAX_WINDOW_S),
            start_before=max(row[2] for row in rows),
            end_after=low,
        )
    if not stored:
        last_end: dict[int, datetime] = {}
        for row in rows:
            end = last_end.get(row[0])
            if end is not None and row[1] < end:
                break
            last_end[row[0]] = row[2]
        else:
            return set()
    found, replays = windows.overlaps(rows, stored)
    if found:
        uuid_of = {pk: uuid for uuid, pk in devices.items()}
        errors = []
        for index, (device, start, end) in found[:100]:
            i = origins[index]
            sample = batch.samples[i]
            errors.append(
                FieldError(
                    f"/samples/{i}/start",
                    "overlapping_window",
                    f"window {_iso(sample.start)}/{_iso(sample.end)} of device "
                    f"{uuid_of.get(device, device)} overlaps the window {_iso(start)}/{_iso(end)} "
                    "already stored or in this batch; a window is never stored twice (an exact "
                    "replay is a duplicate): send a correction as docs/api.md says",
                    i,
                )
            )
        raise ValidationFailed(errors)
    return replays


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _link_jobs(
    organisation_id: int,
    with_jobs: list[dict[str, Any]],
    jobs: dict[JobKey, JobFacts],
    now: datetime,
) -> None:
    """Store the batch's jobs and put each one's id in the shares that name it (in place)."""
    ids = jobs_upsert(organisation_id=organisation_id, jobs=jobs, now=now)
    for share in with_jobs:
        share["j"] = ids[share["j"]]


def _warnings(batch: AnyBatch, skew: float | None) -> list[str]:
    warnings = []
    if skew is not None and abs(skew) > settings.CLOCK_SKEW_WARN_S:
        warnings.append(f"host clock differs from the server's by {skew:.0f} s; check NTP")
    return warnings


def idempotency_keys_expire(*, now: datetime | None = None) -> int:
    """Drop the stored answers of old batches; the samples' natural key still deduplicates them.

    The batch rows stay (samples point at them for provenance); only their key is released.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.INGEST_IDEMPOTENCY_DAYS)
    stale = IngestBatch.objects.filter(received_at__lt=cutoff).exclude(
        idempotency_key__startswith="expired:"
    )
    return stale.update(
        idempotency_key=Concat(Value("expired:"), Cast("id", CharField())), response={}
    )
