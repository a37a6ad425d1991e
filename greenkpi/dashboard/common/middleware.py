"""Response headers every page gets: a Content-Security-Policy that allows no inline script.

Templates carry no inline <script> or on* handlers (tests/dashboard/test_security_headers.py
checks), so scripts may come only from our own origin: a stored XSS in a model or host name cannot
run. Styles allow 'unsafe-inline' because Plotly.js writes style attributes and a <style> element
at run time (and a template sets a meter's width); styles cannot run code.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# Pages we do not write: Swagger UI and Redoc (drf-spectacular) start with an inline script, and the
# admin is Django's. They are left without the header rather than broken by it.
EXEMPT_PREFIXES = ("/api/", "/admin/")


class ContentSecurityPolicyMiddleware:
    """Adds CONTENT_SECURITY_POLICY to our pages' responses that do not set their own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response and not request.path.startswith(
            EXEMPT_PREFIXES
        ):
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response
