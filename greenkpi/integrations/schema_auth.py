"""Tells drf-spectacular how personal access tokens authenticate (a bearer scheme)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    target_class = "greenkpi.integrations.auth.PersonalTokenAuthentication"
    name = "personalToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "gkp_<prefix>_<secret><checksum>",
            "description": "Personal access token (account page: read or write, shown once).",
        }
