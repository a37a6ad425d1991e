"""dcgm-exporter and Kepler sources against exposition text served by a local HTTP server.

The exposition files (tests/collector/data/*.prom) say where each came from; their @TOKENS@ are
filled in per scrape, so the energy counter grows at a known power and every figure below is
hand-worked: a GPU at 300 W for N seconds holds 300 x N J, whatever the generation serves.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gkc_helpers import Clock
from greenkpi_collector.sampler import Sampler
from greenkpi_collector.sources.exporters import build, parse_spec
from greenkpi_collector.sources.exporters.dcgm import DcgmExporterSource, generation
from greenkpi_collector.sources.exporters.kepler import KeplerSource
from greenkpi_collector.sources.exporters.pods import PodAttributor
from greenkpi_collector.sources.exporters.scrape import ExporterSource, parse
from greenkpi_collector.spool import Spool

DATA = Path(__file__).parent / "data"
GPU0 = "GPU-3f1c2a9e-0001-4e8b-9c1d-7a5e2b6f0a10"
GPU1 = "GPU-3f1c2a9e-0002-4e8b-9c1d-7a5e2b6f0a11"
WATTS = {GPU0: 300.0, GPU1: 200.0}
TICKS = 41  # 40 one-second intervals: 4 windows of 10 s
# Per generation: the energy unit it serves (J per unit) and utilization scale (80 % busy).
GENERATIONS = {
    "dcgm_exporter_4.8.prom": ("legacy", 1e-3, 80.0),
    "dcgm_exporter_4.9.prom": ("4.9", 1.0, 0.8),
    "dcgm_exporter_4.10.prom": ("4.10", 1.0, 0.8),
}


class Exposition:
    """A /metrics endpoint whose body the test sets before each scrape."""

    def __init__(self) -> None:
        self.text, self.status = "", 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = outer.text.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exposition() -> Iterator[Exposition]:
    server = Exposition()
    yield server
    server.close()


def fill(template: str, values: dict[str, float]) -> str:
    return re.sub(r"@([A-Z0-9]+)@", lambda m: repr(values[m.group(1)]), template)


def run(
    source_cls: type[ExporterSource],
    exposition: Exposition,
    render: Callable[[int], str],
    tmp_path: Path,
    ticks: int = TICKS,
) -> tuple[list[dict], ExporterSource, list[str]]:
    """Scrape at 1 Hz through the real Sampler and windows; returns spooled samples, the source and
    every source error reported."""
    clock = Clock()
    exposition.text = render(0)
    source = source_cls(exposition.url, clock=clock)
    sampler = Sampler(
        sources=[source],
        spool=Spool(tmp_path / "spool.sqlite3"),
        registry=None,
        host_load=None,
        interval_s=1.0,
        window_s=10.0,
        max_resume_gap_s=0,
        clock=clock,
        attributor=PodAttributor(None, exporters=[source]),
    )
    errors: list[str] = []
    for k in range(ticks):
        rendered = render(k)
        if rendered == "DOWN":
            exposition.status = 503
        else:
            exposition.status, exposition.text = 200, rendered
        sampler.tick()
        errors += source.errors()
        clock.advance(1.0)
    sampler.close_windows(clock())
    errors += sampler.take_errors()
    db = sqlite3.connect(tmp_path / "spool.sqlite3")
    samples = [json.loads(b) for (b,) in db.execute("SELECT body FROM windows ORDER BY id")]
    db.close()
    return samples, source, errors


def energy(samples: list[dict], uuid: str) -> float:
    return sum(s["energy_j"] for s in samples if s["device_uuid"] == uuid)


def dcgm_render(name: str, energy_scale: float = 1.0) -> Callable[[int], str]:
    template = (DATA / name).read_text()
    _, unit_j, busy = GENERATIONS[name]

    def render(k: int) -> str:
        values: dict[str, float] = {}
        for i, uuid in enumerate((GPU0, GPU1)):
            joules = 5_000_000.0 + 1000 * i + WATTS[uuid] * k  # since boot, then +P each second
            values[f"E{i}"] = round(joules / unit_j * energy_scale, 3)
            values[f"P{i}"] = WATTS[uuid]
            values[f"U{i}"] = busy
        return fill(template, values)

    return render


@pytest.mark.parametrize("name", list(GENERATIONS))
def test_each_dcgm_generation_gives_the_same_energy_split_by_pod(
    name: str, exposition: Exposition, tmp_path: Path
) -> None:
    gen = GENERATIONS[name][0]
    samples, source, errors = run(DcgmExporterSource, exposition, dcgm_render(name), tmp_path)
    assert generation(parse(dcgm_render(name)(0))) == gen
    assert any(f"field names of {gen}" in e for e in errors)
    # Hand-worked: 40 s at 300 W and at 200 W, in every generation's units.
    assert energy(samples, GPU0) == pytest.approx(300.0 * 40, abs=0.01)
    assert energy(samples, GPU1) == pytest.approx(200.0 * 40, abs=0.01)
    gpu0 = [s for s in samples if s["device_uuid"] == GPU0]
    assert len(gpu0) == 4
    # The unit is confirmed against power after two counter changes: the first window is flagged
    # power_integral (and said so), the rest are counter deltas.
    assert [s["method"] for s in gpu0] == ["power_integral", "counter", "counter", "counter"]
    assert any("not yet confirmed" in e for e in errors)
    assert gpu0[1]["util_busy"] == pytest.approx(0.8)
    assert gpu0[1]["mem_total_bytes"] in (85_899_345_920, (40_960 + 40_000) * 2**20)
    assert gpu0[1]["mem_used_bytes"] in (41_943_040_000, 40_000 * 2**20)
    # Pods from the exporter's labels, sent as Kubernetes pods (scheduler shares, like the
    # kubelet path's: the k8s-* mappings apply), not as tags; the time-sliced GPU split equally.
    share0 = gpu0[1]["shares"]
    assert [sh["scheduler"] for sh in share0] == [
        {
            "kind": "k8s",
            "namespace": "team-nlp",
            "pod": "trainer-0",
            "container": "trainer",
            "complete": False,  # exporters serve no labels
        }
    ]
    assert [(sh.get("tags"), sh["run"]) for sh in share0] == [(None, "k8s:team-nlp/trainer-0")]
    gpu1 = next(s for s in samples if s["device_uuid"] == GPU1 and s["method"] == "counter")
    split = {sh["scheduler"]["pod"]: (sh["energy_j"], sh["method"]) for sh in gpu1["shares"]}
    assert split == {"infer-a": (1000.0, "equal"), "infer-b": (1000.0, "equal")}
    assert {sh["scheduler"]["namespace"] for sh in gpu1["shares"]} == {"team-vision"}
    assert source.devices()[0].model == "NVIDIA H100 80GB HBM3"


def test_scraping_every_5_s_keeps_the_energy_exact(exposition: Exposition, tmp_path: Path) -> None:
    """The default source_interval_s: between scrapes the last values stand, and the counter's
    growth lands at the next scrape; over the run nothing is lost or doubled."""

    class Every5s(DcgmExporterSource):
        def __init__(self, url: str, **kwargs: object) -> None:
            super().__init__(url, interval_s=5.0, **kwargs)  # type: ignore[arg-type]

    render = dcgm_render("dcgm_exporter_4.9.prom")
    samples, _, _ = run(Every5s, exposition, render, tmp_path)
    assert energy(samples, GPU0) == pytest.approx(300.0 * 40, abs=0.01)
    assert [s["method"] for s in samples if s["device_uuid"] == GPU0][-1] == "counter"


def test_mj_served_where_j_is_expected_is_flagged_never_1000x(
    exposition: Exposition, tmp_path: Path
) -> None:
    # A 4.9 exporter (J) whose energy series actually carries mJ (a custom CSV, a mislabelled
    # relay): the counter grows 1000x faster than the power gauge says.
    render = dcgm_render("dcgm_exporter_4.9.prom", energy_scale=1000.0)
    samples, _, errors = run(DcgmExporterSource, exposition, render, tmp_path)
    assert energy(samples, GPU0) == pytest.approx(300.0 * 40, rel=1e-6)  # from power, not x1000
    assert {s["method"] for s in samples} == {"power_integral"}  # every window flagged
    assert any("1e+03x the power integral: wrong unit" in e for e in errors)


def test_j_served_where_mj_is_expected_is_flagged_never_1000x_too_small(
    exposition: Exposition, tmp_path: Path
) -> None:
    render = dcgm_render("dcgm_exporter_4.8.prom", energy_scale=1e-3)
    samples, _, errors = run(DcgmExporterSource, exposition, render, tmp_path)
    assert energy(samples, GPU1) == pytest.approx(200.0 * 40, rel=1e-6)
    assert {s["method"] for s in samples} == {"power_integral"}
    assert any("0.001x the power integral: wrong unit" in e for e in errors)


def test_counter_reset_garbage_and_a_down_exporter_lose_nothing(
    exposition: Exposition, tmp_path: Path
) -> None:
    base = dcgm_render("dcgm_exporter_4.8.prom")
    template = (DATA / "dcgm_exporter_4.8.prom").read_text()

    def render(k: int) -> str:
        if k in (25, 26):
            return "DOWN"  # HTTP 503
        if k == 27:
            return "this is { not exposition"
        if k < 15:
            return base(k)
        # The driver reloaded at k = 15: counters restart near zero and grow as before.
        values = {"P0": 300.0, "P1": 200.0, "U0": 80.0, "U1": 80.0}
        values |= {"E0": 300.0 * (k - 15) * 1000 + 7, "E1": 200.0 * (k - 15) * 1000 + 7}
        return fill(template, values)

    samples, _, errors = run(DcgmExporterSource, exposition, render, tmp_path)
    # The reset interval comes from power; the three failed scrapes are covered by the next delta.
    assert energy(samples, GPU0) == pytest.approx(300.0 * 40, abs=0.01)
    assert energy(samples, GPU1) == pytest.approx(200.0 * 40, abs=0.01)
    assert any("energy counter reset" in e for e in errors)
    assert any("cannot scrape" in e for e in errors)
    assert any("no metric in the exposition (empty, garbage" in e for e in errors)
    assert max(s["energy_j"] for s in samples) < 300.0 * 10 * 1.5  # no spike anywhere


def test_an_exporter_down_at_start_is_not_fatal(exposition: Exposition, tmp_path: Path) -> None:
    exposition.status = 503
    source = DcgmExporterSource(exposition.url, clock=Clock())
    assert source.devices() == []
    assert any("cannot scrape" in e for e in source.errors())


def test_kepler_splits_a_single_gpu_by_each_pods_energy(
    exposition: Exposition, tmp_path: Path
) -> None:
    template = (DATA / "kepler_0.11.prom").read_text()

    def render(k: int) -> str:  # trainer-0 uses twice the GPU energy eval-0 does
        return fill(
            template, {"E0": 9e5 + 300.0 * k, "P0": 300.0, "PA": 200.0 * k, "PB": 100.0 * k}
        )

    samples, _, errors = run(KeplerSource, exposition, render, tmp_path)
    assert energy(samples, GPU0) == pytest.approx(300.0 * 40, abs=0.01)
    counted = [s for s in samples if s["method"] == "counter"]
    assert len(counted) == 3
    split = {sh["scheduler"]["pod"]: sh for sh in counted[-1]["shares"]}
    assert split["trainer-0"]["energy_j"] == pytest.approx(2000.0)
    assert split["eval-0"]["energy_j"] == pytest.approx(1000.0)
    assert split["trainer-0"]["method"] == "utilization"
    assert split["eval-0"]["scheduler"] == {
        "kind": "k8s",
        "namespace": "team-vision",
        "pod": "eval-0",
        "complete": False,
    }
    assert any("Kepler 0.10+ GPU metrics (1 GPU)" in e for e in errors)


def test_kepler_before_0_10_is_refused_in_plain_words(
    exposition: Exposition, tmp_path: Path
) -> None:
    old = (
        "# TYPE kepler_node_gpu_joules_total counter\n"
        'kepler_node_gpu_joules_total{instance="n",mode="dynamic",package="0"} 12\n'
    )
    samples, _, errors = run(KeplerSource, exposition, lambda k: old, tmp_path, ticks=3)
    assert samples == []
    assert any("Kepler before 0.10" in e for e in errors)


def test_source_specs_name_what_is_wrong() -> None:
    assert parse_spec("dcgm-exporter=http://node:9400/metrics") == (
        "dcgm-exporter",
        "http://node:9400/metrics",
    )
    with pytest.raises(ValueError, match="KIND one of dcgm-exporter, kepler"):
        parse_spec("nvml=http://x")
    with pytest.raises(ValueError, match="must start with http"):
        parse_spec("kepler=node:28282")
    assert isinstance(build("kepler=http://127.0.0.1:9/metrics", timeout_s=0.2), KeplerSource)


def test_the_source_setting_replaces_nvml_and_names_bad_values(
    exposition: Exposition, tmp_path: Path
) -> None:
    from greenkpi_collector.agent import attributor, build_sources
    from greenkpi_collector.attribution import Registry
    from greenkpi_collector.config import ConfigError, load

    exposition.text = dcgm_render("dcgm_exporter_4.8.prom")(0)
    env = {"GREENKPI_STATE_DIR": str(tmp_path), "GREENKPI_CPU": "off"}
    config = load({"source": f"dcgm-exporter={exposition.url}"}, env)
    sources, notes, _ = build_sources(config)
    assert [s.name for s in sources] == ["dcgm-exporter"]  # gpu = auto: NVML not read as well
    assert {d.uuid for d in sources[0].devices()} == {GPU0, GPU1}
    assert any("NVML is not read" in n for n in notes)
    assert isinstance(attributor(Registry(tmp_path / "registry"), None, sources), PodAttributor)
    with pytest.raises(ConfigError, match=r"source from GREENKPI_SOURCE: .*KIND one of"):
        load({}, env | {"GREENKPI_SOURCE": "prometheus=http://x"})
    with pytest.raises(ConfigError, match="gpu = nvml both measure the GPUs"):
        load({"source": f"kepler={exposition.url}", "gpu": "nvml"}, env)


def test_check_says_what_the_exporter_serves_and_when_it_is_down(
    exposition: Exposition, tmp_path: Path
) -> None:
    from greenkpi_collector.check import run_check
    from greenkpi_collector.config import load

    exposition.text = dcgm_render("dcgm_exporter_4.9.prom")(0)
    env = {"GREENKPI_STATE_DIR": str(tmp_path), "GREENKPI_CPU": "off"}
    lines: list[str] = []
    run_check(load({"source": f"dcgm-exporter={exposition.url}"}, env), lines.append)
    assert (
        f"GPU (dcgm-exporter): {GPU0} NVIDIA H100 80GB HBM3: energy counter relayed"
        in "\n".join(lines)
    )
    assert any("field names of 4.9" in line for line in lines)
    assert "GPU: NVML not read (an exporter source measures the GPUs)" in lines
    exposition.status = 503
    lines.clear()
    run_check(load({"source": f"kepler={exposition.url}"}, env), lines.append)
    assert any(
        line.startswith("GPU (kepler) note: kepler http") and "503" in line for line in lines
    )


def test_exporter_pods_become_scheduler_pods_only_when_the_schema_accepts_them() -> None:
    from greenkpi_collector.sources.exporters.dcgm import pod_tags
    from greenkpi_collector.sources.exporters.scrape import PodTable

    table = PodTable()
    attributor = PodAttributor(None, exporters=[], cluster="prod-eu")
    attributor.exporters = [type("S", (), {"pods": table})()]  # type: ignore[list-item]
    good = table.pid(pod_tags({"pod": "train-0", "namespace": "ml", "container": "main"}))
    claim = attributor.resolve(good)
    assert claim is not None and claim.job == ("prod-eu", "ml/train-0") and claim.tags == ()
    pod, run = attributor.describe(claim.job)
    assert (pod.namespace, pod.pod, pod.container, pod.cluster, pod.complete) == (
        "ml",
        "train-0",
        "main",
        "prod-eu",
        False,
    )
    assert run == "k8s:prod-eu:ml/train-0"
    # a MIG instance's series: the pod holds a slice (the pods page's "MIG slice")
    sliced = table.pid(pod_tags({"pod": "p", "namespace": "ml", "GPU_I_ID": "3"}))
    assert attributor.resolve(sliced).tags == (("gpu_sharing", "mig"),)  # type: ignore[union-attr]
    # a namespace the schema refuses (upper case) stays tags: never a 400 for the whole window
    odd = table.pid(pod_tags({"pod": "x", "namespace": "Team_A"}))
    kept = attributor.resolve(odd)
    assert kept is not None and kept.job is None
    assert dict(kept.tags) == {"k8s_pod": "x", "k8s_namespace": "Team_A"}
