"""Issue 11, done means: Slurm jobs posted through the ingest API reach the right team, model, run
and waste, in the rollups, the runs, the API and the pages. Runs on both layers (SQLite, PostgreSQL:
the two rollup paths).

The scenario (one hour H, cluster ``hpc``, every window 60 s, three windows per GPU, site Paris:
PUE 1.3, FR 33.4811 gCO2e/kWh (direct, 2023 mix); token default team: vision). Mappings: account ``nlp-lab`` -> nlp,
account ``speech-lab`` -> speech, comment ``greenkpi:model=(?P<model>...)`` -> its group,
job name ``^llm-pretrain`` -> model llm-7b, job name ``whisper`` -> model whisper, run kind
fine-tuning.

node-a (4 GPUs) and node-b (3 GPUs):
- job 100, account nlp-lab, user nina, comment ``greenkpi:model=bert``: node-a GPU 0, busy.
- job 200, account speech-lab, user sam, name ``train-whisper``: node-a GPU 1, busy.
  (jobs 100 and 200: two jobs of different accounts sharing one node)
- job 300, account nlp-lab, user noah, name ``llm-pretrain-7b``: node-a GPU 2 and node-b GPU 0
  busy, node-b GPU 1 allocated but idle (one multi-node, multi-GPU job with an idle GPU).
- job 400, account physics (no mapping), user pat: node-a GPU 3, busy.
- node-b GPU 2: no job, idle.

A busy window is 12,000 J (200 W), an idle one 3,600 J (60 W). Per GPU and hour:
busy 3 x 12,000 J = 36,000 J = 0.01 kWh; idle 3 x 3,600 J = 10,800 J = 0.003 kWh; 180 s = 0.05 GPU-h.

Hand-worked answers:
- job 100: team nlp, model bert, run kind training, 0.01 kWh, 1 GPU, no waste.
- job 200: team speech, model whisper, run kind fine-tuning, 0.01 kWh.
- job 300: team nlp, model llm-7b, ONE run of 0.01 + 0.01 + 0.003 = 0.023 kWh on 2 hosts and
  3 GPUs; waste 0.05 GPU-h and 0.003 kWh = 0.003 x 1.3 x 33.4811 / 1000 = 1.30576e-4 kgCO2e.
- job 400: unmapped: the host's default team vision, no model, 0.01 kWh counted as unmapped.
- node-b GPU 2: vision, 0.003 kWh, neither waste (no job) nor unmapped (no identity).
- organisation: 5 x 0.01 + 2 x 0.003 = 0.056 kWh; unmapped 0.01 kWh = 17.857 % (account physics).
- waste per account: nlp-lab 0.05 GPU-h; per user: noah; per team: nlp.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from greenkpi.ingest.models import SampleShare, SchedulerJob
from greenkpi.inventory.mappings import mapping_save
from greenkpi.inventory.services import team_create
from greenkpi.kpis import scheduler as jobs_read
from greenkpi.kpis import services
from greenkpi.kpis.attribution import mapping_changes_apply
from greenkpi.kpis.models import HourlyRollup
from greenkpi.kpis.services import hour_floor
from greenkpi.workloads.models import Run
from greenkpi.workloads.scheduler_runs import UNMAPPED_MODEL_KEY, scheduler_runs_sync

BUSY_J, IDLE_J = 12_000.0, 3_600.0
KWH_BUSY, KWH_IDLE = 0.01, 0.003
WASTE_KG = 0.003 * 1.3 * (17212.96 / 514.11) / 1000


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def job(job_id: str, account: str, user: str, name: str, comment: str = "", **extra) -> dict:
    return {
        "kind": "slurm",
        "cluster": "hpc",
        "job_id": job_id,
        "user": user,
        "account": account,
        "partition": "gpu",
        "qos": "normal",
        "job_name": name,
        **({"comment": comment} if comment else {}),
        "nodes": "node-[a-b]",
        **extra,
    }


def node_batch(hostname: str, gpus: list[tuple[dict | None, str]], start: datetime) -> dict:
    """Three 60 s windows of ``hostname``'s GPUs: (job or None, 'busy' | 'idle') per GPU."""
    samples = []
    for w in range(3):
        t0 = start + timedelta(seconds=60 * w)
        for index, (scheduler, state) in enumerate(gpus):
            energy = BUSY_J if state == "busy" else IDLE_J
            sample = {
                "device_uuid": f"GPU-{hostname}-{index}",
                "device_kind": "gpu",
                "start": z(t0),
                "end": z(t0 + timedelta(seconds=60)),
                "energy_j": energy,
                "method": "counter",
                "util_busy": 0.8 if state == "busy" else 0.0,
                "idle_s": 0.0 if state == "busy" else 60.0,
            }
            if scheduler is not None:
                share = {
                    "energy_j": energy,
                    "method": "utilization" if state == "busy" else "allocated-idle",
                    "run": f"slurm:hpc:{scheduler['job_id']}",
                    "scheduler": scheduler,
                }
                if state == "busy":
                    share["pid"] = 1000 + index
                if scheduler["job_id"] == "300":
                    share["tags"] = {"mlflow_run_id": "mlf-300"}
                sample["shares"] = [share]
            samples.append(sample)
    return {
        "schema_version": 1,
        "host": {
            "hostname": hostname,
            "agent_version": "test",
            "site": "paris-dc",
            "clock": z(datetime.now(UTC)),
            "devices": [
                {"uuid": f"GPU-{hostname}-{i}", "kind": "gpu", "model": "H100"}
                for i in range(len(gpus))
            ],
        },
        "samples": samples,
    }


@pytest.fixture
def hour() -> datetime:
    return hour_floor(datetime.now(UTC) - timedelta(hours=3))


@pytest.fixture
def slurm(acme, acme_token, post_batch, hour):
    """The scenario posted, mapped and rolled up; returns a namespace of what the tests need."""
    _, secret = acme_token
    acme.speech = team_create(organisation=acme, name="Speech", slug="speech")
    mapping_save(organisation=acme, kind="slurm-account", pattern="nlp-lab", team=acme.nlp)
    mapping_save(organisation=acme, kind="slurm-account", pattern="speech-lab", team=acme.speech)
    mapping_save(
        organisation=acme, kind="slurm-comment", pattern=r"greenkpi:model=(?P<model>[\w.-]+)"
    )
    mapping_save(
        organisation=acme, kind="slurm-job-name", pattern="^llm-pretrain", model_key="llm-7b"
    )
    mapping_save(
        organisation=acme,
        kind="slurm-job-name",
        pattern="whisper",
        model_key="whisper",
        run_kind="fine-tuning",
    )
    start = hour + timedelta(minutes=10)
    j100 = job("100", "nlp-lab", "nina", "bert-ft", comment="greenkpi:model=bert")
    j200 = job("200", "speech-lab", "sam", "train-whisper")
    j300 = job(
        "300",
        "nlp-lab",
        "noah",
        "llm-pretrain-7b",
        start=z(hour),
        end=z(hour + timedelta(minutes=20)),
    )
    j400 = job("400", "physics", "pat", "sim")
    node_a = node_batch(
        "node-a", [(j100, "busy"), (j200, "busy"), (j300, "busy"), (j400, "busy")], start
    )
    node_b = node_batch("node-b", [(j300, "busy"), (j300, "idle"), (None, "idle")], start)
    for body in (node_a, node_b):
        response = post_batch(secret, body)
        assert response.status_code == 201, response.content
    mapping_changes_apply()  # the mappings' own change rows: nothing stored before them
    assert services.window_recompute(organisation_id=acme.pk, hour=hour).status == "done"
    return acme


def by_job(org, hour):
    rows: dict[str, list[HourlyRollup]] = {}
    for row in HourlyRollup.objects.filter(organisation=org, hour=hour):
        rows.setdefault(row.run_key, []).append(row)
    return rows


def test_each_job_gets_its_mapped_team_and_model_and_one_stored_job_row(slurm, hour):
    acme = slurm
    assert SchedulerJob.objects.filter(organisation=acme).count() == 4
    j300 = SchedulerJob.objects.get(organisation=acme, job_id="300")
    assert (j300.account, j300.user, j300.run_key) == ("nlp-lab", "noah", "slurm:hpc:300")
    assert j300.attributes == {"mlflow_run_id": "mlf-300"}
    assert SampleShare.objects.filter(scheduler_job=j300).count() == 9  # 3 GPUs x 3 windows

    rows = by_job(acme, hour)
    owners = {key: {(r.team_id, r.model_key) for r in group} for key, group in rows.items()}
    assert owners == {
        "slurm:hpc:100": {(acme.nlp.pk, "bert")},
        "slurm:hpc:200": {(acme.speech.pk, "whisper")},
        "slurm:hpc:300": {(acme.nlp.pk, "llm-7b")},
        "slurm:hpc:400": {(acme.vision.pk, "")},
        "": {(acme.vision.pk, "")},
    }
    energy = {key: sum(r.energy_kwh for r in group) for key, group in rows.items()}
    assert energy == pytest.approx(
        {
            "slurm:hpc:100": KWH_BUSY,
            "slurm:hpc:200": KWH_BUSY,
            "slurm:hpc:300": 2 * KWH_BUSY + KWH_IDLE,
            "slurm:hpc:400": KWH_BUSY,
            "": KWH_IDLE,
        }
    )
    waste = {key: sum(r.allocated_idle_gpu_h for r in group) for key, group in rows.items()}
    assert waste == pytest.approx({k: 0.05 if k == "slurm:hpc:300" else 0.0 for k in rows})
    unmapped = {key: sum(r.unmapped_energy_kwh for r in group) for key, group in rows.items()}
    assert unmapped == pytest.approx({k: KWH_BUSY if k == "slurm:hpc:400" else 0.0 for k in rows})


def test_waste_per_job_user_account_and_team_and_the_unmapped_share(slurm, hour):
    acme = slurm
    jobs = jobs_read.jobs_usage(organisation_id=acme.pk, start=hour, end=hour + timedelta(hours=1))
    assert jobs[0].job_id == "300"  # most wasted GPU-hours first
    top = jobs[0]
    assert (top.team_id, top.model_key, top.account, top.user) == (
        acme.nlp.pk,
        "llm-7b",
        "nlp-lab",
        "noah",
    )
    assert top.energy_kwh == pytest.approx(0.023)
    assert top.wasted_gpu_h == pytest.approx(0.05)
    assert top.wasted_energy_kwh == pytest.approx(0.003)
    assert top.wasted_kgco2e == pytest.approx(WASTE_KG)
    accounts = jobs_read.waste_by(jobs, by="account")
    assert (accounts[0].key, accounts[0].jobs) == ("nlp-lab", 2)
    assert accounts[0].wasted_gpu_h == pytest.approx(0.05)
    assert {g.key: g.wasted_gpu_h for g in jobs_read.waste_by(jobs, by="user")} == pytest.approx(
        {"noah": 0.05, "nina": 0.0, "sam": 0.0, "pat": 0.0}
    )
    teams = {g.key: g.wasted_gpu_h for g in jobs_read.waste_by(jobs, by="team_id")}
    assert teams == pytest.approx({acme.nlp.pk: 0.05, acme.speech.pk: 0.0, acme.vision.pk: 0.0})
    # filtered by account, by user; scoped to the teams one may see
    only = jobs_read.jobs_usage(
        organisation_id=acme.pk, start=hour, end=hour + timedelta(hours=1), account="nlp-lab"
    )
    assert sorted(j.job_id for j in only) == ["100", "300"]
    scoped = jobs_read.jobs_usage(
        organisation_id=acme.pk,
        start=hour,
        end=hour + timedelta(hours=1),
        team_ids=[acme.speech.pk],
    )
    assert [j.job_id for j in scoped] == ["200"]

    gap = jobs_read.unmapped(organisation_id=acme.pk, start=hour, end=hour + timedelta(hours=1))
    assert gap.energy_kwh == pytest.approx(0.01)
    assert gap.total_energy_kwh == pytest.approx(0.056)
    assert gap.share == pytest.approx(0.01 / 0.056)  # 17.857 %
    assert gap.accounts == [("physics", pytest.approx(0.01))]


def test_each_job_becomes_one_run_with_its_hosts_and_devices(slurm, hour):
    acme = slurm
    assert scheduler_runs_sync(organisation_id=acme.pk) == 4
    runs = {r.key: r for r in Run.objects.select_related("model__team")}
    assert set(runs) == {f"slurm:hpc:{j}" for j in ("100", "200", "300", "400")}
    big = runs["slurm:hpc:300"]
    assert (big.model.team_id, big.model.key, big.kind) == (acme.nlp.pk, "llm-7b", "training")
    assert big.mlflow_run_id == "mlf-300"
    assert big.started_at == hour
    assert big.ended_at == hour + timedelta(minutes=20)  # the job ended: the run is closed
    assert big.status == "succeeded"
    whisper = runs["slurm:hpc:200"]
    assert (whisper.model.key, whisper.kind, whisper.status) == (
        "whisper",
        "fine-tuning",
        "running",
    )
    orphan = runs["slurm:hpc:400"]
    assert (orphan.model.team_id, orphan.model.key) == (acme.vision.pk, UNMAPPED_MODEL_KEY)
    # a second sync has nothing to do
    assert scheduler_runs_sync(organisation_id=acme.pk) == 0

    from greenkpi.workloads.selectors import run_totals
    from greenkpi.workloads.selectors.runs import run_detail

    detail = run_detail(model=big.model, run=big)
    assert detail.energy_kwh == pytest.approx(0.023)  # one number for the whole job
    assert detail.hosts == ["node-a", "node-b"]
    assert len(detail.devices) == 3
    assert sorted(round(d.energy_kwh, 6) for d in detail.devices) == [0.003, 0.01, 0.01]
    assert detail.kgco2e > 0
    totals = run_totals(model=orphan.model, run_keys=[orphan.key])
    assert totals[orphan.key].energy_kwh == pytest.approx(0.01)


def test_a_mapping_added_later_recomputes_history_and_moves_the_run(slurm, hour):
    acme = slurm
    scheduler_runs_sync(organisation_id=acme.pk)
    mapping_save(organisation=acme, kind="slurm-account", pattern="physics", team=acme.nlp)
    assert mapping_changes_apply() == 1  # the one hour job 400 held
    services.windows_recompute_dirty()
    rows = by_job(acme, hour)["slurm:hpc:400"]
    assert {(r.team_id, r.unmapped_energy_kwh) for r in rows} == {(acme.nlp.pk, 0.0)}
    gap = jobs_read.unmapped(organisation_id=acme.pk, start=hour, end=hour + timedelta(hours=1))
    assert gap.energy_kwh == 0.0
    assert scheduler_runs_sync(organisation_id=acme.pk) == 1
    run = Run.objects.select_related("model").get(key="slurm:hpc:400")
    assert (run.model.team_id, run.model.key) == (acme.nlp.pk, UNMAPPED_MODEL_KEY)

    # and deleting it puts the job back with the host's team
    from greenkpi.inventory.mappings import mapping_delete
    from greenkpi.inventory.models import IdentityMapping

    mapping_delete(mapping=IdentityMapping.objects.get(organisation=acme, pattern="physics"))
    mapping_changes_apply()
    services.windows_recompute_dirty()
    rows = by_job(acme, hour)["slurm:hpc:400"]
    assert {r.team_id for r in rows} == {acme.vision.pk}
    assert sum(r.unmapped_energy_kwh for r in rows) == pytest.approx(0.01)


def test_an_explicit_team_on_the_share_wins_over_the_account_mapping(
    acme, acme_token, post_batch, hour
):
    _, secret = acme_token
    mapping_save(organisation=acme, kind="slurm-account", pattern="nlp-lab", team=acme.nlp)
    body = node_batch("node-c", [(job("500", "nlp-lab", "nina", "x"), "busy")], hour)
    for sample in body["samples"]:
        sample["shares"][0]["team"] = "vision"  # GREENKPI_TEAM=vision in the job's environment
    assert post_batch(secret, body).status_code == 201
    mapping_changes_apply()
    services.window_recompute(organisation_id=acme.pk, hour=hour)
    rows = by_job(acme, hour)["slurm:hpc:500"]
    assert {(r.team_id, r.unmapped_energy_kwh) for r in rows} == {(acme.vision.pk, 0.0)}


def test_another_organisations_mappings_and_jobs_never_touch_ours(
    slurm, globex, globex_token, post_batch, hour
):
    acme = slurm
    _, secret = globex_token
    # Globex maps the same account name to its own team and runs a job with the same id
    mapping_save(organisation=globex, kind="slurm-account", pattern="physics", team=globex.research)
    body = node_batch(
        "g-node", [(job("400", "physics", "pat", "sim"), "busy")], hour + timedelta(minutes=5)
    )
    assert post_batch(secret, body).status_code == 201
    mapping_changes_apply()
    services.windows_recompute_dirty()
    ours = by_job(acme, hour)["slurm:hpc:400"]
    assert {r.team_id for r in ours} == {acme.vision.pk}  # still unmapped in Acme
    theirs = HourlyRollup.objects.filter(organisation=globex, run_key="slurm:hpc:400")
    assert {r.team_id for r in theirs} == {globex.research.pk}
    assert SchedulerJob.objects.filter(job_id="400").count() == 2  # one per organisation
    assert jobs_read.jobs_usage(
        organisation_id=acme.pk, start=hour, end=hour + timedelta(hours=1), account="physics"
    )[0].energy_kwh == pytest.approx(0.01)


def test_a_malformed_scheduler_field_is_a_400_naming_it_and_stores_nothing(
    acme, acme_token, post_batch, hour
):
    _, secret = acme_token
    body = node_batch("node-z", [(job("12x", "nlp-lab", "nina", "x"), "busy")], hour)
    response = post_batch(secret, body)
    assert response.status_code == 400
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert "/samples/0/shares/0/scheduler/job_id" in pointers
    assert not SchedulerJob.objects.exists()
    assert not SampleShare.objects.exists()


def test_a_failed_batch_stores_no_job(acme, acme_token, post_batch, hour, monkeypatch):
    """The job upsert is inside the batch's transaction: a failure after it leaves nothing."""
    from greenkpi.ingest import writers

    _, secret = acme_token

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "write_samples", boom)
    body = node_batch("node-y", [(job("700", "nlp-lab", "nina", "x"), "busy")], hour)
    with pytest.raises(RuntimeError):
        post_batch(secret, body)
    assert not SchedulerJob.objects.exists()


@pytest.mark.postgres
def test_both_rollup_paths_store_the_same_rows_for_the_scenario(
    slurm, acme_token, post_batch, hour
):
    """kpis.rollup (row by row, Python resolution) and kpis.rollup_pg (one statement, SQL
    resolution) agree field for field, with a window split between a job, an explicit team on the
    same job, and the unattributed rest."""
    from django.db import connection, transaction
    from django.utils import timezone

    from greenkpi.kpis import rollup, rollup_pg

    assert connection.vendor == "postgresql"
    acme = slurm
    _, secret = acme_token
    body = node_batch("node-m", [(job("800", "physics", "pat", "mix"), "busy")], hour)
    for sample in body["samples"]:
        first = sample["shares"][0]
        sample["shares"] = [
            {**first, "energy_j": 6000.0},
            {**first, "energy_j": 4000.0, "team": "nlp"},
            {"energy_j": 2000.0, "method": "unattributed"},
        ]
    assert post_batch(secret, body).status_code == 201

    def stored() -> list[dict]:
        rows = HourlyRollup.objects.filter(organisation=acme, hour=hour).values()
        return sorted(
            ({k: v for k, v in r.items() if k != "id"} for r in rows),
            key=lambda r: (r["device_id"], r["team_id"] or 0, r["model_key"], r["run_key"]),
        )

    now = timezone.now()
    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        rollup.write_rows(rollup.build_rows(organisation_id=acme.pk, hour=hour, now=now))
    expected = stored()
    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=now)
    got = stored()
    assert got == expected
    mixed = [r for r in got if r["run_key"] == "slurm:hpc:800"]
    assert {(r["team_id"], round(r["unmapped_energy_kwh"], 9)) for r in mixed} == {
        (acme.vision.pk, round(3 * 6000 / 3.6e6, 9)),
        (acme.nlp.pk, 0.0),
    }


def test_the_api_lists_jobs_by_waste_scoped_to_what_each_person_may_see(
    slurm, people, client, hour
):
    day = hour.date().isoformat()
    client.login(username="alice", password=people["password"])  # Acme admin: every team
    answer = client.get(f"/api/v1/slurm/jobs/?from={day}&to={day}").json()
    assert [j["job_id"] for j in answer["jobs"]][:1] == ["300"]
    top = answer["jobs"][0]
    assert (top["team"], top["model_key"], top["account"]) == ("nlp", "llm-7b", "nlp-lab")
    assert top["wasted_gpu_h"] == pytest.approx(0.05)
    assert top["wasted_kgco2e"] == pytest.approx(WASTE_KG)
    assert answer["by_account"][0]["key"] == "nlp-lab"
    assert answer["by_team"][0]["key"] == "nlp"
    assert answer["unmapped"]["energy_kwh"] == pytest.approx(0.01)
    assert answer["unmapped"]["share"] == pytest.approx(0.01 / 0.056)
    assert answer["unmapped"]["accounts"] == [
        {"account": "physics", "energy_kwh": pytest.approx(0.01)}
    ]
    only = client.get(f"/api/v1/slurm/jobs/?from={day}&to={day}&user=noah").json()
    assert [j["job_id"] for j in only["jobs"]] == ["300"]
    assert client.get("/api/v1/slurm/jobs/?range=1y").status_code == 400

    client.login(username="victor", password=people["password"])  # vision viewer
    seen = client.get(f"/api/v1/slurm/jobs/?from={day}&to={day}").json()
    assert [j["job_id"] for j in seen["jobs"]] == ["400"]  # vision's only job
    assert seen["unmapped"]["energy_kwh"] == pytest.approx(0.01)

    client.login(username="gary", password=people["password"])  # Globex admin
    assert client.get(f"/api/v1/slurm/jobs/?org=acme&from={day}&to={day}").status_code == 404
    assert client.get(f"/api/v1/slurm/jobs/?from={day}&to={day}").json()["jobs"] == []


def test_mappings_through_the_api_are_validated_and_kept_to_their_organisation(
    acme, people, client
):
    from greenkpi.inventory.models import IdentityMapping

    client.login(username="alice", password=people["password"])
    bad = client.post(
        "/api/v1/identity-mappings/",
        {"kind": "slurm-job-name", "pattern": "train-(unclosed", "model_key": "m"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad["Content-Type"].startswith("application/problem+json")
    assert "pattern" in bad.json()["fields"]
    assert "regular expression" in bad.json()["fields"]["pattern"][0]
    nobody = client.post(
        "/api/v1/identity-mappings/",
        {"kind": "slurm-account", "pattern": "x", "team": "ghosts"},
        content_type="application/json",
    )
    assert nobody.status_code == 400 and "team" in nobody.json()["fields"]
    assert not IdentityMapping.objects.exists()
    made = client.post(
        "/api/v1/identity-mappings/",
        {"kind": "slurm-account", "pattern": "nlp-lab", "team": "nlp"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    mapping_id = made.json()["id"]
    moved = client.put(
        f"/api/v1/identity-mappings/{mapping_id}/",
        {"kind": "slurm-account", "pattern": "nlp-lab", "team": "vision"},
        content_type="application/json",
    )
    assert moved.status_code == 200 and moved.json()["team"] == "vision"

    client.login(username="nina", password=people["password"])  # a team manager, not org admin
    assert client.get("/api/v1/identity-mappings/").status_code == 403
    client.login(username="gary", password=people["password"])  # another organisation's admin
    assert client.get(f"/api/v1/identity-mappings/{mapping_id}/").status_code == 404
    assert client.delete(f"/api/v1/identity-mappings/{mapping_id}/").status_code == 404
    assert client.get("/api/v1/identity-mappings/").json() == []
    client.login(username="alice", password=people["password"])
    assert client.delete(f"/api/v1/identity-mappings/{mapping_id}/").status_code == 204
    assert not IdentityMapping.objects.exists()


def test_the_daily_digest_has_a_line_per_slurm_account_for_the_month(slurm, hour):
    from django.template.loader import render_to_string
    from django.utils import timezone

    from greenkpi.alerts.digest import Recipient, digest_payload

    acme = slurm
    admin = Recipient("ops@acme.test", None, org_wide=True)  # type: ignore[arg-type]
    payload = digest_payload(
        organisation=acme, recipient=admin, day=hour.date(), now=timezone.now()
    )
    lines = {a["account"]: a for a in payload["slurm_month"]["accounts"]}
    assert list(lines) == ["nlp-lab", "physics", "speech-lab"]  # most wasted first, then by name
    assert lines["nlp-lab"]["jobs"] == 2
    assert lines["nlp-lab"]["energy_kwh"] == pytest.approx(0.033)
    assert lines["nlp-lab"]["wasted_gpu_h"] == pytest.approx(0.05)
    assert lines["nlp-lab"]["wasted_kgco2e"] == pytest.approx(WASTE_KG, abs=1e-6)
    text = render_to_string("alerts/digest.txt", {"payload": payload})
    assert "nlp-lab: 2 jobs, 0.033 kWh, wasted 0.05 GPU-h" in text
    # a team manager's digest holds only their teams' jobs
    speech = Recipient("sam@acme.test", None, team_ids={acme.speech.pk})  # type: ignore[arg-type]
    payload = digest_payload(
        organisation=acme, recipient=speech, day=hour.date(), now=timezone.now()
    )
    assert [a["account"] for a in payload["slurm_month"]["accounts"]] == ["speech-lab"]


def test_the_slurm_pages_show_the_same_numbers_scoped_like_every_page(slurm, people, client, hour):
    acme = slurm
    day = hour.date().isoformat()
    query = f"org=acme&from={day}&to={day}"
    client.login(username="alice", password=people["password"])
    page = client.get(f"/slurm/?{query}")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("hpc:300") < html.index("hpc:100")  # most wasted first
    assert "0.0230 kWh" in html and "0.0500" in html  # job 300's energy and wasted GPU-hours
    assert "0.131 g" in html  # its wasted CO2e, 1.30576e-4 kg
    assert "0.0100 kWh</strong> (17.9 %)" in html  # unmapped: 0.01 of 0.056 kWh
    assert "kind=slurm-account&amp;pattern=physics" in html  # "map it"
    from greenkpi.kpis.daily import days_refresh_stale

    days_refresh_stale(limit=100)  # whole days: the overview reads the daily tables
    overview = client.get(f"/?{query}").content.decode()
    assert "0.0100 kWh (17.9 %) from unmapped accounts" in overview
    filtered = client.get(f"/slurm/?{query}&account=speech-lab").content.decode()
    assert "hpc:200" in filtered and "hpc:300" not in filtered
    # The page keeps the navigation and the person's name, with or without a user filter (a
    # context variable "user" for the filter once hid both).
    for path in (f"/slurm/?{query}", f"/slurm/?{query}&user=noah"):
        html = client.get(path).content.decode()
        assert 'class="who">alice<' in html and ">Overview</a>" in html, path

    scheduler_runs_sync(organisation_id=acme.pk)
    run = Run.objects.get(key="slurm:hpc:300")
    detail = client.get(f"/models/{run.model_id}/runs/{run.pk}/?org=acme")
    assert detail.status_code == 200
    assert "node-a, node-b" in detail.content.decode()  # one run, both hosts, per-device table

    client.login(username="victor", password=people["password"])  # vision viewer
    mine = client.get(f"/slurm/?{query}").content.decode()
    assert "hpc:400" in mine and "hpc:300" not in mine
    assert "map it" not in mine
    assert client.get("/slurm/mappings/?org=acme").status_code == 404

    client.login(username="gary", password=people["password"])  # another organisation
    assert client.get(f"/slurm/?{query}").status_code == 404
    mapping = acme.identity_mappings.first()
    assert client.get(f"/slurm/mappings/{mapping.pk}/").status_code == 404
    assert client.post(f"/slurm/mappings/{mapping.pk}/delete/").status_code == 404


def test_the_mapping_form_refuses_a_bad_regex_and_a_good_one_recomputes_history(
    slurm, people, client, hour
):
    from greenkpi.inventory.models import IdentityMapping, IdentityMappingChange

    acme = slurm
    client.login(username="alice", password=people["password"])
    assert (
        "physics"
        in client.get(
            "/slurm/mappings/?org=acme&kind=slurm-account&pattern=physics"
        ).content.decode()
    )
    before = IdentityMapping.objects.count()
    bad = client.post(
        "/slurm/mappings/?org=acme",
        {"kind": "slurm-job-name", "pattern": "sim(", "model_key": "x", "priority": 0},
    )
    assert bad.status_code == 400
    assert "not a valid regular expression" in bad.content.decode()
    assert IdentityMapping.objects.count() == before
    good = client.post(
        "/slurm/mappings/?org=acme",
        {"kind": "slurm-account", "pattern": "physics", "team": acme.nlp.pk, "priority": 0},
    )
    assert good.status_code == 302
    assert IdentityMappingChange.objects.filter(pattern="physics", applied_at=None).exists()
    services.windows_recompute_dirty()  # applies the change, then recomputes
    rows = by_job(acme, hour)["slurm:hpc:400"]
    assert {r.team_id for r in rows} == {acme.nlp.pk}
    mapping = IdentityMapping.objects.get(organisation=acme, pattern="physics")
    edited = client.post(
        f"/slurm/mappings/{mapping.pk}/?org=acme",
        {"kind": "slurm-account", "pattern": "physics", "team": acme.speech.pk, "priority": 0},
    )
    assert edited.status_code == 302
    services.windows_recompute_dirty()
    assert {r.team_id for r in by_job(acme, hour)["slurm:hpc:400"]} == {acme.speech.pk}
    assert client.post(f"/slurm/mappings/{mapping.pk}/delete/?org=acme").status_code == 302
    services.windows_recompute_dirty()
    assert {r.team_id for r in by_job(acme, hour)["slurm:hpc:400"]} == {acme.vision.pk}


def test_a_known_job_with_the_same_facts_is_not_rewritten_and_a_new_fact_is_stored(
    acme, acme_token, post_batch, hour
):
    """Steady state: a batch of known jobs costs one SELECT, no write; a new fact (the job's end)
    is stored, never blanked by a later batch that omits it, and brings the run up to date."""
    _, secret = acme_token
    running = job("900", "nlp-lab", "nina", "long")
    assert post_batch(secret, node_batch("node-r", [(running, "busy")], hour)).status_code == 201
    SchedulerJob.objects.update(runs_synced_at=hour)  # as if its run were in sync
    stored = SchedulerJob.objects.get(job_id="900")
    later = hour + timedelta(minutes=30)
    assert post_batch(secret, node_batch("node-r", [(running, "busy")], later)).status_code == 201
    again = SchedulerJob.objects.get(job_id="900")
    assert (again.last_seen, again.runs_synced_at) == (stored.last_seen, hour)  # not rewritten
    assert (again.first_window, again.last_window) == (hour, hour)  # hours, not windows

    ended = {**running, "start": z(hour), "end": z(later + timedelta(minutes=3))}
    body = node_batch("node-r", [(ended, "busy")], later + timedelta(minutes=3))
    assert post_batch(secret, body).status_code == 201
    done = SchedulerJob.objects.get(job_id="900")
    assert done.ended_at == later + timedelta(minutes=3)
    assert done.runs_synced_at is None  # the run follows
    body = node_batch("node-r", [(running, "busy")], hour + timedelta(hours=1))
    assert post_batch(secret, body).status_code == 201
    kept = SchedulerJob.objects.get(job_id="900")
    assert kept.ended_at == done.ended_at and kept.last_window == hour + timedelta(hours=1)


def test_a_kubernetes_pod_is_not_a_slurm_job_on_the_report(slurm, acme_token, post_batch, hour):
    acme = slurm
    _, secret = acme_token
    pod = {"kind": "k8s", "namespace": "vision", "pod": "train-0", "container": "trainer"}
    body = node_batch("k8s-node", [(None, "busy")], hour)
    for sample in body["samples"]:
        sample["shares"] = [{"energy_j": BUSY_J, "method": "utilization", "scheduler": pod}]
    assert post_batch(secret, body).status_code == 201
    services.window_recompute(organisation_id=acme.pk, hour=hour)
    end = hour + timedelta(hours=1)
    every = jobs_read.jobs_usage(organisation_id=acme.pk, start=hour, end=end)
    slurm_only = jobs_read.jobs_usage(organisation_id=acme.pk, start=hour, end=end, kind="slurm")
    assert len(every) == len(slurm_only) + 1
    assert {j.cluster for j in slurm_only} == {"hpc"}
