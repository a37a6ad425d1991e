"""Issue 13, done means: "the same scenario through a dcgm-exporter scrape of each field-name
generation gives the same kWh" — end to end.

For each generation (up to 4.8: mJ / % / MiB; 4.9: J / ratio / bytes, renamed fields and driver
label; 4.10: 4.9 plus the renamed profiling fields) the exposition text of
tests/collector/data/dcgm_exporter_<generation>.prom (where each name comes from is in its header
and in docs/collector.md) is served by a local HTTP server and scraped by the collector's own
parts: the dcgm-exporter source, the Sampler and its windows, the spool, and the Sender with its
HTTP transport posting to the running backend (live_server). The backend stores, maps the pods'
namespaces to teams and rolls the hour up.

The node, in every generation (one scrape a second, 40 s = four 10 s windows, hour H + 10 min):
GPU0 at 300 W, held by team-nlp/trainer-0; GPU1 at 200 W, time-sliced between team-vision/infer-a
and team-vision/infer-b (dcgm-exporter repeats its series per pod; no per-pod utilization, so
equally). Hand-worked, whatever unit the generation serves:
- GPU0: 300 W x 40 s = 12,000 J = 3.3333e-3 kWh, all trainer-0's (team nlp);
- GPU1: 200 W x 40 s = 8,000 J = 2.2222e-3 kWh, 4,000 J = 1.1111e-3 kWh each to infer-a and
  infer-b (team vision);
- per generation 20,000 J = 5.5556e-3 kWh; the three generations' rollups hold the same numbers.
Each generation runs as its own node (its GPU UUIDs and cluster name carry the generation), so the
three land side by side in the same hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gkc_helpers import Clock
from greenkpi_collector.sampler import Sampler
from greenkpi_collector.sender import Sender
from greenkpi_collector.sources.exporters.dcgm import DcgmExporterSource
from greenkpi_collector.sources.exporters.pods import PodAttributor
from greenkpi_collector.spool import Spool
from greenkpi_collector.transport import Transport
from test_collector_exporters import GENERATIONS, Exposition, dcgm_render

from greenkpi.kpis.models import HourlyRollup
from greenkpi.lib.periods import hour_floor
from greenkpi_schema.v1 import HostFacts

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

J_PER_KWH = 3.6e6
TICKS = 41
# The GPUs' UUIDs in the exposition files, rewritten per generation (one node each).
UUID_STEM = "3f1c2a9e"


@pytest.fixture(autouse=True)
def _no_rate_limit(settings) -> None:
    settings.INGEST_RATE_PER_MINUTE = 1_000_000


def scrape_and_send(
    name: str, stem: str, start: float, url: str, secret: str, tmp_path: Path
) -> list[str]:
    """One generation's node: 40 s of scrapes through the real source and windows, then every
    spooled window posted by the real Sender. Returns the source errors reported."""
    exposition = Exposition()
    render = dcgm_render(name)
    clock = Clock(start)
    spool = Spool(tmp_path / f"{stem}.sqlite3")
    errors: list[str] = []
    try:
        exposition.text = render(0).replace(UUID_STEM, stem)
        source = DcgmExporterSource(exposition.url, clock=clock)
        sampler = Sampler(
            sources=[source],
            spool=spool,
            registry=None,
            host_load=None,
            interval_s=1.0,
            window_s=10.0,
            max_resume_gap_s=0,
            clock=clock,
            attributor=PodAttributor(None, exporters=[source], cluster=f"gen-{stem}"),
        )
        for k in range(TICKS):
            exposition.text = render(k).replace(UUID_STEM, stem)
            sampler.tick()
            errors += source.errors()
            clock.advance(1.0)
        sampler.close_windows(clock())
    finally:
        exposition.close()
    sender = Sender(
        spool=spool,
        transport=Transport(url, lambda: secret, timeout_s=10),
        facts=lambda: HostFacts(
            hostname=f"gpu-node-{stem}",
            site="paris-dc",
            clock=datetime.now(UTC),
            devices=source.devices(),
        ),
    )
    for _ in range(20):
        if sender.step() is None:
            break
        outcome = sender.last_outcome
        assert outcome is not None and outcome.kind == "ok", outcome
    assert spool.stats().depth == 0
    return errors


def test_each_dcgm_generation_gives_the_same_kwh_in_the_rollups(
    live_server, acme, acme_token, tmp_path
):
    from greenkpi.inventory.mappings import mapping_save
    from greenkpi.kpis import services
    from greenkpi.kpis.attribution import mapping_changes_apply

    _, secret = acme_token
    mapping_save(organisation=acme, kind="k8s-namespace", pattern="team-nlp", team=acme.nlp)
    mapping_save(organisation=acme, kind="k8s-namespace", pattern="team-vision", team=acme.vision)
    mapping_changes_apply()
    hour = hour_floor(datetime.now(UTC) - timedelta(hours=3))
    start = (hour + timedelta(minutes=10)).timestamp()
    stems = {name: f"{i + 4:x}a0e{i:04x}"[:8] for i, name in enumerate(GENERATIONS)}
    for name, stem in stems.items():
        errors = scrape_and_send(name, stem, start, live_server.url, secret, tmp_path)
        assert any(f"field names of {GENERATIONS[name][0]}" in e for e in errors), errors
    assert services.window_recompute(organisation_id=acme.pk, hour=hour).status == "done"

    per_generation: dict[str, dict[str, tuple[str, float]]] = {}
    for name, stem in stems.items():
        rows = HourlyRollup.objects.filter(
            organisation=acme, hour=hour, device__uuid__contains=stem
        ).select_related("team")
        owners: dict[str, tuple[str, float]] = {}
        for row in rows:
            # the run key names the cluster (the generation); the pod is what is compared
            pod = row.run_key.split(":", 2)[-1] if row.run_key else "(none)"
            team, kwh = owners.get(pod, (row.team.slug, 0.0))
            owners[pod] = (team, kwh + row.energy_kwh)
        per_generation[name] = owners
    expected = {
        "team-nlp/trainer-0": ("nlp", pytest.approx(12_000 / J_PER_KWH)),
        "team-vision/infer-a": ("vision", pytest.approx(4_000 / J_PER_KWH)),
        "team-vision/infer-b": ("vision", pytest.approx(4_000 / J_PER_KWH)),
    }
    for name, owners in per_generation.items():
        assert owners == expected, name
    # and the three generations agree with one another to the stored float
    legacy, *newer = per_generation.values()
    for owners in newer:
        assert {p: round(k, 12) for p, (_, k) in owners.items()} == {
            p: round(k, 12) for p, (_, k) in legacy.items()
        }
    total = sum(r.energy_kwh for r in HourlyRollup.objects.filter(organisation=acme, hour=hour))
    assert total == pytest.approx(3 * 20_000 / J_PER_KWH)
