"""Issue 17: Schemathesis over the whole /api/schema/ with every check, as each kind of caller.

A real gunicorn serves the live PostgreSQL test database; the Schemathesis CLI (pinned in the dev
extra) runs all its phases and checks against it four times: as a collector token, as an org
admin and as a team viewer (session + CSRF token, so writes reach the views), and as a personal
access token (the KPI read API's caller, issue 15). Path parameters are pinned to objects that
exist (a model, a run, the token's CodeCarbon URL, a budget, an alert) so generated requests
get past the 404; the ingest operation carries an example batch with fresh timestamps (served
by the schema itself, greenkpi/api_schema.py), and a hook (testsupport/schemathesis_hooks.py)
makes three in four positive ingest cases valid batches of many samples with shares, so fuzzing
reaches storage in bulk: the test prints how many samples, shares and batches were stored. The run is bounded
(examples per operation and a time budget); its counts are printed, and any server error or
conformance failure fails the test.

Scope: every operation, the scheduler endpoints of issue 11 included (their 500s were the test
gunicorn's 404 page failing without collectstatic's manifest; their errors are documented now).
Schemathesis's own generator sometimes
fails inside its coverage phase ("Runtime Error": recursion or flaky generation on the nested
ingest body); those are printed with the counts, but only check failures (server errors,
conformance) fail the test.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from testsupport.celery_workers import worker_env
from testsupport.gunicorn import running

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EXCLUDE_PATHS = os.environ.get("SCHEMATHESIS_EXCLUDE_PATHS", "")
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))
MAX_TIME_S = int(os.environ.get("SCHEMATHESIS_MAX_TIME_S", "60"))
# Valid ingest batches with many samples and shares, three in four positive ingest cases.
HOOKS = Path(__file__).resolve().parent.parent / "testsupport" / "schemathesis_hooks.py"
# What the runs store at least (the served three-sample example alone stored 3).
MIN_SAMPLES_STORED = 200
# A fourth run fuzzes the ingest operation alone, positive data only, with this many cases: in the
# whole-schema runs its share of the time budget is a few seconds, too few cases to store much.
INGEST_MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_INGEST_MAX_EXAMPLES", "60"))
# Schemathesis's coverage phase recurses deeply on nested bodies; under CPython 3.11's default
# limit the ast module can fail mid-way ("AST constructor recursion depth mismatch").
SCHEMATHESIS = [
    sys.executable,
    "-c",
    "import sys; sys.setrecursionlimit(20000); from schemathesis.cli import schemathesis; "
    "sys.argv[0] = 'schemathesis'; schemathesis()",
]
# Operations whose rules span fields or stored state, which a JSON schema cannot state: a
# schema-valid body may still be refused with a 400 that names the rule (a window in the future
# or too old, shares not adding up, an unknown version, ended_at before started_at,
# need_exit >= need_enter, a histogram with no counts, an unknown team). Everywhere else, and for
# every other status, positive data must be accepted.
RULE_BOUND_OPERATIONS = (
    "ingest_batch|ingest_codecarbon|models_register|models_summary|models_versions_register|"
    "models_runs_open|models_runs_close|models_evaluations_create|models_drift_reports_create|"
    # a mapping's kind and pattern are checked together (a regex must compile, a k8s label must be
    # a label); the jobs and pods reports' from/to must be dates and come as a pair
    "identity_mappings_create|identity_mapping_update|slurm_jobs|k8s_pods|"
    # a decision's reason is required unless it re-opens, a snooze needs a future end
    "recommendations_decide|"
    # issue 15's read API: a series range must be whole buckets of its resolution and bounded
    # (a month of hours...); a cursor is one the API gave out; only an open alert is acknowledged
    "kpis_series|budgets_list|alerts_list|alert_rules_list|alerts_acknowledge"
)


@pytest.fixture
def server(transactional_db, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn needs the live PostgreSQL test database (a skip fails CI)")
    env = worker_env(tmp_path, None)
    env["INGEST_RATE_PER_MINUTE"] = "100000"
    env["SECRET_KEY"] = settings.SECRET_KEY  # sessions made here must be valid there
    with running(env, tmp_path / "gunicorn.log", workers=2) as gunicorn:
        gunicorn.tmp_path = tmp_path  # type: ignore[attr-defined]
        yield gunicorn


@pytest.fixture
def world(server, people, acme, acme_token):
    """What the pinned path parameters point at: a vision model with a deployed version and a
    run (Acme), created after the server started (transactional_db: committed, so it sees them)."""
    from greenkpi.alerts.services import budget_create
    from greenkpi.workloads import services

    model, _ = services.model_register(team=acme.vision, key="resnet50")
    services.version_register(model=model, version="1", baseline_value=0.9, deploy=True)
    run, _ = services.run_open(model=model, key="train-1", kind="training")
    from greenkpi.recommendations.models import Finding

    finding = Finding.objects.create(
        organisation=acme, detector="idle-allocation", owner_kind="model",
        owner="vision/resnet50", subject="allocation", team=acme.vision, model_key="resnet50",
        title="vision/resnet50: 96% idle", action="auto-stop", tactic="Use Energy-Aware Scheduling",
        annual_kwh=100.0, annual_location_kgco2e=5.0,
    )  # fmt: skip
    budget = budget_create(
        organisation=acme,
        user=people["alice"],
        name="fuzz",
        metric="energy_kwh",
        period="month",
        amount=100.0,
        team=acme.vision,
    )
    return {
        "model": model,
        "run": run,
        "secret": acme_token[1],
        "finding": finding,
        "budget": budget,
        "alert": _alert(acme, budget),
        "pat": _personal_token(acme, people["alice"]),
    }


def _alert(acme, budget):
    from django.utils import timezone

    from greenkpi.alerts.models import Alert, AlertRule

    rule = AlertRule.objects.create(
        organisation=acme, name="fuzz", kind="budget_threshold", budget=budget
    )
    now = timezone.now()
    return Alert.objects.create(
        organisation=acme,
        rule=rule,
        team=acme.vision,
        fingerprint="fuzz",
        labels={"rule": str(rule.pk), "team": "vision"},
        state="firing",
        active_since=now,
        last_active_at=now,
    )


def _personal_token(acme, alice) -> str:
    """A write token of the org admin (issue 15): the read API's own kind of caller."""
    from datetime import timedelta

    from django.utils import timezone

    from greenkpi.integrations.tokens import token_create

    expires = timezone.now() + timedelta(days=1)
    return token_create(
        user=alice, organisation=acme, name="fuzz", access="write", expires_at=expires
    )[1]


def session_headers(user) -> list[str]:
    from django.test import Client

    client = Client()
    client.force_login(user)  # committed: transactional_db, so gunicorn sees the session
    csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret
    cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}"
    return ["-H", f"Cookie: {cookie}", "-H", f"X-CSRFToken: {csrf}"]


def run_schemathesis(
    server,
    name: str,
    auth: list[str],
    world,
    excluded: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    extra_mode: str = "all",
    max_examples: int = MAX_EXAMPLES,
) -> dict:
    config = server.tmp_path / f"schemathesis-{name}.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.model_id" = {world["model"].pk}\n'
        f'"path.run_id" = {world["run"].pk}\n'
        f'"path.token" = "{world["secret"]}"\n'
        f'"path.finding_id" = {world["finding"].pk}\n'
        f'"path.budget_id" = {world["budget"].pk}\n'
        f'"path.alert_id" = {world["alert"].pk}\n'
        "\n[[operations]]\n"
        f'include-operation-id-regex = "^({RULE_BOUND_OPERATIONS})$"\n'
        "checks.positive_data_acceptance.expected-statuses = "
        '["2xx", "400", "401", "403", "404", "409", "422", "429"]\n'
        "\n[[operations]]\n"
        'include-operation-id = "models_register"\n'
        'parameters = { "body.team" = "vision" }\n'
    )
    report_dir = server.tmp_path / f"report-{name}"
    command = [
        *SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        f"{server.url}/api/schema/?format=json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(MAX_TIME_S),
        "--workers",
        "2",
        "--seed",
        "17",
        "--report",
        "ndjson",
        "--report-dir",
        str(report_dir),
        "--suppress-health-check",
        "all",
        "--no-color",
        *(("--exclude-path-regex", EXCLUDE_PATHS) if EXCLUDE_PATHS else ()),
        *(("--exclude-checks", ",".join(excluded)) if excluded else ()),
        "--mode",
        extra_mode,
        *extra,
        *auth,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_TIME_S * 4 + 120, env=env
    )
    if os.environ.get("SCHEMATHESIS_LOG_DIR"):
        log = Path(os.environ["SCHEMATHESIS_LOG_DIR"]) / f"schemathesis-{name}.log"
        log.write_text(done.stdout + done.stderr)
    return {"name": name, "rc": done.returncode, "out": done.stdout + done.stderr}


def counts(out: str) -> dict:
    """The run's counts from Schemathesis's summary: cases generated, check failures by code
    (ST1xx server/conformance, ST2xx data acceptance, ST4xx auth) and generator errors."""
    generated = re.search(r"(\d+) generated", out)
    return {
        "generated": int(generated.group(1)) if generated else None,
        "failures": {code: int(n) for code, n in re.findall(r"❌ (ST\d+)[^:]*: (\d+)", out)},
        "errors": {kind: int(n) for kind, n in re.findall(r"🚫 ([A-Za-z ]+): (\d+)", out)},
    }


def test_schemathesis_finds_no_server_error_and_no_conformance_failure(server, world, people):
    from greenkpi.ingest.models import IngestBatch, Sample, SampleShare

    runs = [
        run_schemathesis(
            server, "collector-token", ["-H", f"Authorization: Bearer {world['secret']}"], world
        ),
        # ignored_auth strips the credentials it knows from the schema and expects a 401; a
        # session travels here as a fixed Cookie header (with its CSRF token), which it cannot
        # strip, so that one check runs for the token caller only.
        run_schemathesis(
            server, "org-admin", session_headers(people["alice"]), world, ("ignored_auth",)
        ),
        run_schemathesis(
            server, "team-viewer", session_headers(people["victor"]), world, ("ignored_auth",)
        ),
        # Ingest alone, positive data (three in four cases a valid batch from the hook): storage.
        run_schemathesis(
            server,
            "ingest-fuzz",
            ["-H", f"Authorization: Bearer {world['secret']}"],
            world,
            extra=("--include-operation-id", "ingest_batch", "--phases", "fuzzing"),
            extra_mode="positive",
            max_examples=INGEST_MAX_EXAMPLES,
        ),
        # A personal access token (issue 15): the read API's caller; elsewhere it is a 401.
        run_schemathesis(
            server, "personal-token", ["-H", f"Authorization: Bearer {world['pat']}"], world
        ),
    ]
    stored = Sample.objects.count()
    shares = SampleShare.objects.count()
    batches = IngestBatch.objects.count()
    results = {run["name"]: counts(run["out"]) for run in runs}
    for name, result in results.items():
        print(f"schemathesis as {name}: {result}")
    print(f"ingest stored during the run: {stored} samples, {shares} shares, {batches} batches")
    broken = {name: r for name, r in results.items() if r["failures"] or r["generated"] is None}
    assert not broken, "\n\n".join(
        f"--- {run['name']}\n{run['out'][-15000:]}" for run in runs if run["name"] in broken
    )
    assert stored >= MIN_SAMPLES_STORED, f"only {stored} generated samples reached storage"
    assert shares > 0, "no generated share reached storage"
