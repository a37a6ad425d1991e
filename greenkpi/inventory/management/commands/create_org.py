from django.core.management.base import BaseCommand

from greenkpi.inventory.services import organisation_create


class Command(BaseCommand):
    help = "Create an organisation. Prints its slug."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", default="")

    def handle(self, *args, name, slug, **options):
        org = organisation_create(name=name, slug=slug)
        self.stdout.write(org.slug)
