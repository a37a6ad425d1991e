from django.core.management.base import BaseCommand

from greenkpi.demo.simulation import DEMO_PASSWORD, DEMO_SLUG, load_demo
from greenkpi.inventory.models import Organisation


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
        self.stdout.write(
            f"Loaded {result['samples']:,} measurement windows for '{result['organisation']}' "
            f"(users admin / vision-lead / nlp-viewer, password {DEMO_PASSWORD})."
        )
