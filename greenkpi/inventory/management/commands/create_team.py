from django.core.management.base import BaseCommand, CommandError

from greenkpi.inventory.models import Organisation
from greenkpi.inventory.services import team_create


class Command(BaseCommand):
    help = "Create a team in an organisation. Prints its slug (what collectors send as --team)."

    def add_arguments(self, parser):
        parser.add_argument("org", help="organisation slug")
        parser.add_argument("name")
        parser.add_argument("--slug", default="")

    def handle(self, *args, org, name, slug, **options):
        organisation = Organisation.objects.filter(slug=org).first()
        if organisation is None:
            raise CommandError(f"no organisation with slug {org!r}")
        self.stdout.write(team_create(organisation=organisation, name=name, slug=slug).slug)
