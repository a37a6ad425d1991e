import os
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from greenkpi.demo.simulation import DEMO_PASSWORD, DEMO_SLUG, load_demo
from greenkpi.inventory.models import Organisation
from greenkpi.kpis import daily as daily_rollups
from greenkpi.kpis import services as kpi_services


class Command(BaseCommand):
    help = "Load the simulated demo organisation (skipped if it exists; --reset reloads it)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--reset", action="store_true")

    def handle(self, *args, days, reset, **options):
        existing = Organisation.objects.filter(slug=DEMO_SLUG)
        if existing.exists() and not reset:
            self.stdout.write("Demo organisation already loaded (use --reset to reload).")
            return
        if reset:
            from django.contrib.auth import get_user_model

            from greenkpi.ingest.models import Sample, SampleShare

            device_ids = list(existing.values_list("hosts__devices__id", flat=True))
            Sample.objects.filter(device_id__in=device_ids).delete()
            SampleShare.objects.filter(device_id__in=device_ids).delete()
            existing.delete()
            get_user_model().objects.filter(
                username__in=["admin", "vision-lead", "nlp-viewer"]
            ).delete()
        result = load_demo(days=days)
        org = result["organisation"]
        self.stdout.write(f"Loaded {result['samples']:,} measurement windows for '{org}'.")
        # The local collector of `make demo` reports this machine with the demo's token.
        token_path = Path(settings.VAR_DIR) / "demo-collector.token"
        token_path.unlink(missing_ok=True)
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(result["token"])
        self.stdout.write("Computing hourly rollups (energy, carbon, cost) for the dashboard ...")
        now = timezone.now()
        windows = kpi_services.backfill_windows(
            start=now - timedelta(days=days + 1),
            end=now + timedelta(hours=1),
            organisation_ids=[org.pk],
        )
        run = kpi_services.windows_recompute(windows=windows, kind="backfill")
        daily_rollups.days_refresh_stale(limit=10_000)  # the days pages read for long ranges
        self.stdout.write(
            f"Rollups: {run.windows_done} window(s), {run.windows_failed} failed. "
            f"Users admin / vision-lead / nlp-viewer, password {DEMO_PASSWORD}."
        )
