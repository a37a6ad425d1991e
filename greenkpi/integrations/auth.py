"""DRF authentication and permission for personal access tokens (``Authorization: Bearer gkp_``).

The read API and the OpenMetrics export accept a personal token or a session. A collector token
(``gkc_``) is not a personal token: it fails authentication here (401), so an ingest credential
can never read KPIs. A ``read`` token on a write operation is authenticated but refused (403).
"""

from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from greenkpi.integrations.models import PersonalAccessToken, TokenAccess
from greenkpi.integrations.tokens import token_authenticate

READ_ONLY = "this personal access token is read-only: create a write token to change anything"


class PersonalTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[object, PersonalAccessToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        token = token_authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed(
                "invalid, expired or revoked personal access token (collector tokens cannot read)"
            )
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class TokenMayWrite(BasePermission):
    """Sessions and write tokens may use unsafe methods; read tokens may not."""

    message = READ_ONLY

    def has_permission(self, request: Request, view: object) -> bool:
        token = request.auth
        if request.method in SAFE_METHODS or not isinstance(token, PersonalAccessToken):
            return True
        return token.access == TokenAccess.WRITE
