"""Two nodes, one database (issue 16 item 6): two separate gunicorn instances, two Celery workers
and ONE beat on one PostgreSQL and one Redis, with real collectors posting to both web nodes while
every hour is marked for recompute again and again (what a methodology change or a backfill does).

Processes, all real and each its own OS process:

- web A and web B: gunicorn, each on its own free port, with its own PROMETHEUS_MULTIPROC_DIR
  (two hosts); a `greenkpi-collector run` (simulated GPUs, half-second windows) posts to each, and
  older history goes to both through the collector's own sender (``Transport``);
- worker 1 and worker 2: `celery worker` on the test's queue, competing for every task;
- one beat (the production scheduler class, testsupport/beat_app.py's one-second schedule):
  recompute dirty windows, evaluate alert rules, sweep the outbox.

What must hold once everything has settled:

- every window a collector measured is stored once (measured - still spooled = stored rows);
- per (hour, device) the hourly rollup's energy equals the sum of the raw windows (no window counted
  twice by two workers recomputing the same hour, none lost to a recompute that raced an insert);
- every notification goes out exactly once: each outbox row sent, the webhook receiver got each
  ``webhook-id`` once and nothing else, each email notification is in the mail files once, and
  nothing more is sent through further beat cycles.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from testsupport.celery_workers import (
    forget_queue,
    start_beat,
    start_worker,
    stop,
    wait_for,
    worker_env,
)
from testsupport.gunicorn import Gunicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collector"))
from gkc_helpers import spool_depth  # the collector tests' helpers

from greenkpi.alerts.models import (
    AlertRule,
    Budget,
    Channel,
    Notification,
    RuleKind,
)
from greenkpi.ingest.models import Sample
from greenkpi.kpis import services
from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
REAL_DISPATCH = True  # the workers' outbox dispatches go through Redis (see conftest.dispatched)
ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = str(ROOT / ".venv" / "bin" / "greenkpi-collector")
WINDOWS_EACH = 12  # windows each collector measures (2 GPUs x 0.5 s windows: ~3 s)
RECOMPUTES = 3  # times every hour is marked dirty again while the collectors post


@pytest.fixture
def queue(redis_url):
    name = f"two-nodes-{uuid.uuid4().hex[:12]}"
    yield name
    forget_queue(redis_url, name)
    import redis

    redis.Redis.from_url(redis_url).delete(f"greenkpi-test:{name}", f"greenkpi-test:{name}:beats")


@pytest.fixture
def rules(acme, rollups, receiver):
    """A silent collector (fires once) and an organisation energy budget the collectors cross at
    50/80/100 % (fires while the data flows in); each rule tells a webhook and an email channel."""
    rollups.host(acme, "gpu-quiet", team=acme.vision, last_seen=timezone.now() - timedelta(hours=1))
    hook = receiver.channel(
        acme,
        group_wait_s=0,
        group_interval_s=1,  # news (no data, then firing) told a second apart, not 5 min
    )
    mail = Channel.objects.create(
        organisation=acme,
        name="mail",
        kind="email",
        addresses="ops@example.com",
        notify_team_managers=False,  # one address: one message per notification
        group_wait_s=0,
        group_interval_s=1,
    )
    budget = Budget.objects.create(
        organisation=acme,
        name="energy",
        scope="organisation",
        metric="energy_kwh",
        period="month",
        amount=1e-6,  # kWh: crossed by the first rolled-up window
    )
    silent = AlertRule.objects.create(
        organisation=acme, name="silent", kind=RuleKind.COLLECTOR_SILENT, silent_minutes=15, for_s=0
    )
    spend = AlertRule.objects.create(
        organisation=acme, name="spend", kind=RuleKind.BUDGET_THRESHOLD, budget=budget, for_s=0
    )
    for rule in (silent, spend):
        rule.channels.set([hook, mail])
    return hook, mail


def start_collector(tmp_path: Path, server: str, secret: str, host: str) -> subprocess.Popen:
    env = {k: v for k, v in worker_env(tmp_path, None).items() if not k.startswith("GREENKPI_")}
    env.update(
        GREENKPI_SERVER=server,
        GREENKPI_TOKEN=secret,
        GREENKPI_HOSTNAME=host,
        GREENKPI_STATE_DIR=str(tmp_path / host),
        GREENKPI_GPU="sim",
        GREENKPI_SIM_GPUS="2",
        GREENKPI_CPU="off",
        GREENKPI_SLURM="off",
        GREENKPI_SAMPLE_INTERVAL_S="0.1",
        GREENKPI_WINDOW_S="0.5",
        GREENKPI_BACKOFF_BASE_S="0.05",
        GREENKPI_BACKOFF_CAP_S="0.5",
        GREENKPI_TIMEOUT_S="60",
        PYTHONUNBUFFERED="1",
    )
    log = open(tmp_path / f"collector-{host}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([COLLECTOR, "run"], env=env, stdout=log, stderr=log, cwd=ROOT)


def spool(tmp_path: Path, host: str) -> tuple[int, int]:
    """(windows still waiting, windows measured) from a collector's spool."""
    return spool_depth(tmp_path / host)


def history(servers: list[str], secret: str, make_batch) -> int:
    """Older windows (three hours back) through the collector's sender, alternating the nodes."""
    from greenkpi_collector.transport import Transport

    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    sent = 0
    for i in range(6):
        body = make_batch(
            hostname="hist-node", devices=2, windows=10, start=base + timedelta(minutes=25 * i)
        )
        outcome = Transport(servers[i % 2], lambda: secret, timeout_s=60).post_batch(
            orjson.dumps(body), str(uuid.uuid4())
        )
        assert outcome.status == 201, outcome
        sent += len(body["samples"])
    return sent


def email_ids(mail_dir: Path) -> Counter[str]:
    """Notification ids of the emails in the file backend's files (one header per message)."""
    found: Counter[str] = Counter()
    for path in mail_dir.glob("*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("X-GreenKPI-Notification: "):
                found[line.split(": ", 1)[1].strip()] += 1
    return found


def settled() -> bool:
    return (
        RollupWindow.objects.exists()
        and not RollupWindow.objects.filter(computed_version__lt=F("version")).exists()
    )


def test_two_web_nodes_two_workers_one_beat(
    tmp_path, redis_url, queue, acme, acme_token, make_batch, rules, receiver
):
    _, secret = acme_token
    hook, mail = rules
    started = time.monotonic()
    mail_env = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend"}
    workers = [
        start_worker(tmp_path, redis_url, queue, name=name, env=mail_env) for name in ("w1", "w2")
    ]
    beat = start_beat(tmp_path, redis_url, "one", queue, lease_s=30.0)
    nodes = []
    for name in ("a", "b"):
        env = worker_env(tmp_path, redis_url)
        env.update(
            SECRET_KEY=settings.SECRET_KEY,
            INGEST_RATE_PER_MINUTE="100000",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"prometheus-{name}"),  # one per host
        )
        nodes.append(Gunicorn(env, tmp_path / f"gunicorn-{name}.log", workers=1))
    collectors: dict[str, subprocess.Popen] = {}
    try:
        with ThreadPoolExecutor(2) as pool:  # both nodes boot at once
            list(pool.map(lambda node: node.start(), nodes))
        urls = [node.url for node in nodes]
        collectors = {
            f"node-{name}": start_collector(tmp_path, url, secret, f"node-{name}")
            for name, url in zip("ab", urls, strict=True)
        }
        history_windows = history(urls, secret, make_batch)

        # While both collectors post, every hour with data is marked dirty again (a methodology
        # recompute): the two workers recompute the same hours as new windows land in them.
        recomputes = 0
        deadline = time.monotonic() + 60
        while True:
            measured = [spool(tmp_path, host)[1] for host in collectors]
            if recomputes >= RECOMPUTES and min(measured) >= WINDOWS_EACH:
                break
            assert time.monotonic() < deadline, f"collectors measured only {measured}"
            assert all(c.poll() is None for c in collectors.values()), "a collector exited"
            now = timezone.now()
            services.backfill_windows(start=now - timedelta(hours=4), end=now + timedelta(hours=1))
            recomputes += 1
            wait_for(  # one recompute pass of the beat's after the mark, not a guess of a delay
                lambda n=now: RecomputeRun.objects.filter(
                    kind="periodic", started_at__gt=n
                ).exists(),
                "a recompute after the mark",
                tmp_path,
            )
        for process in collectors.values():
            process.send_signal(signal.SIGTERM)
        for host, process in collectors.items():
            assert process.wait(timeout=30) == 0, (tmp_path / f"collector-{host}.log").read_text()

        # Every measured window stored once (a window still spooled was not sent).
        for host in collectors:
            waiting, measured = spool(tmp_path, host)
            stored = Sample.objects.filter(device__host__hostname=host).count()
            assert stored == measured - waiting, (host, stored, measured, waiting)
            assert stored >= WINDOWS_EACH
        assert Sample.objects.filter(device__host__hostname="hist-node").count() == (
            history_windows
        )

        wait_for(settled, "every dirty window to be recomputed", tmp_path)
        raw = {
            (row["hour"], row["device_id"]): row
            for row in Sample.objects.annotate(hour=TruncHour("window_start"))
            .values("hour", "device_id")
            .annotate(j=Sum("energy_j"), n=Count("pk"))
        }
        rolled = {
            (row["hour"], row["device_id"]): row["kwh"]
            for row in HourlyRollup.objects.values("hour", "device_id").annotate(
                kwh=Sum("energy_kwh")
            )
        }
        assert set(rolled) == set(raw)
        for key, row in raw.items():
            assert rolled[key] == pytest.approx(row["j"] / 3.6e6, rel=1e-12, abs=0), key
        assert len({hour for hour, _ in raw}) >= 2  # the history's hour and the collectors' own

        # Notifications: every row sent; each exactly once on its channel.
        wait_for(
            lambda: (
                Notification.objects.filter(rule__name="spend", event="firing").count() == 2
                and not Notification.objects.exclude(status="sent").exists()
            ),
            "the budget's firing on both channels, and every notification sent",
            tmp_path,
        )
        # Three more evaluations and sweeps by the beat (a resend would be written now), then the
        # beat stops and what it wrote is sent: each row must have reached its channel once.
        last = RecomputeRun.objects.filter(kind="alerts-evaluate").count()
        wait_for(
            lambda: RecomputeRun.objects.filter(kind="alerts-evaluate").count() >= last + 3,
            "three more alert evaluations",
            tmp_path,
        )
        stop(beat)
        wait_for(
            lambda: not Notification.objects.exclude(status="sent").exists(),
            "the last rows to be sent",
            tmp_path,
        )
        hook_ids = {
            str(pk) for (pk,) in Notification.objects.filter(channel=hook).values_list("pk")
        }
        got = Counter(headers["webhook-id"] for _, headers, _ in receiver.requests)
        assert got == Counter(hook_ids), got
        mail_ids = {
            str(pk) for (pk,) in Notification.objects.filter(channel=mail).values_list("pk")
        }
        assert email_ids(tmp_path / "var" / "mail") == Counter(mail_ids)
        events = sorted(Notification.objects.values_list("channel__name", "rule__name", "event"))
        for channel in ("hook", "mail"):
            assert (channel, "silent", "firing") in events and (
                channel,
                "spend",
                "firing",
            ) in events
        print(
            f"two nodes: {len(raw)} device-hours, "
            f"{Sample.objects.count()} windows via {urls}, {recomputes} recomputes of every hour, "
            f"{len(hook_ids)} webhook + {len(mail_ids)} email notifications, each once; "
            f"{time.monotonic() - started:.1f} s"
        )
    finally:
        for process in collectors.values():
            if process.poll() is None:
                process.kill()
        for process in (beat, *workers):  # all told at once, then waited for
            if process.poll() is None:
                process.terminate()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda node: node.stop(), nodes))
        for process in (*collectors.values(), beat, *workers):
            stop(process)
