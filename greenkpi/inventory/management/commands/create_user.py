import os

from django.core.management.base import BaseCommand, CommandError

from greenkpi.inventory.models import Organisation, Role, Team
from greenkpi.inventory.services import user_create


class Command(BaseCommand):
    help = (
        "Create a user with a role in an organisation (org-wide) or in one of its teams. "
        "The password comes from --password-env (an environment variable name), never argv."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--team", default="", help="team slug; omit for an org-wide role")
        parser.add_argument("--role", choices=Role.values, default=Role.VIEWER)
        parser.add_argument("--email", default="")
        parser.add_argument("--password-env", default="GREENKPI_PASSWORD")
        parser.add_argument("--superuser", action="store_true")

    def handle(self, *args, username, org, team, role, email, password_env, superuser, **options):
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"set the password in the environment variable {password_env}")
        organisation = Organisation.objects.filter(slug=org).first()
        if organisation is None:
            raise CommandError(f"no organisation with slug {org!r}")
        team_obj = None
        if team:
            team_obj = Team.objects.filter(organisation=organisation, slug=team).first()
            if team_obj is None:
                raise CommandError(f"no team {team!r} in {org!r}")
        user_create(
            username=username,
            password=password,
            email=email,
            organisation=organisation,
            team=team_obj,
            role=role,
            is_superuser=superuser,
        )
        self.stdout.write(username)
