"""Tells drf-spectacular how collector tokens authenticate (a bearer scheme in /api/schema/)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class CollectorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "greenkpi.ingest.auth.CollectorTokenAuthentication"
    name = "collectorToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "gkc_<prefix>_<secret><checksum>",
            "description": "Write-only collector token (manage.py create_token or the admin).",
        }
