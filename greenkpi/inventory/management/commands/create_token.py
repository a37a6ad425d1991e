from django.core.management.base import BaseCommand, CommandError

from greenkpi.inventory.models import Organisation, Site, Team
from greenkpi.inventory.services import token_create


class Command(BaseCommand):
    help = "Create a write-only collector token. Prints the secret once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("org", help="organisation slug")
        parser.add_argument("--name", default="collector")
        parser.add_argument("--team", default="", help="default team slug for unclaimed energy")
        parser.add_argument("--site", default="", help="default site name for new hosts")

    def handle(self, *args, org, name, team, site, **options):
        organisation = Organisation.objects.filter(slug=org).first()
        if organisation is None:
            raise CommandError(f"no organisation with slug {org!r}")
        team_obj = site_obj = None
        if team:
            team_obj = Team.objects.filter(organisation=organisation, slug=team).first()
            if team_obj is None:
                raise CommandError(f"no team {team!r} in {org!r}")
        if site:
            site_obj = Site.objects.filter(organisation=organisation, name=site).first()
            if site_obj is None:
                raise CommandError(f"no site {site!r} in {org!r}")
        _, secret = token_create(
            organisation=organisation, name=name, default_team=team_obj, default_site=site_obj
        )
        self.stdout.write(secret)
