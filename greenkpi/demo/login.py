"""The login page, which in demo mode (``GREENKPI_DEMO=1``, set by ``make demo``) says which
users exist and what each sees: a newcomer should not need the README to log in. Never in
production: without the setting the page is Django's own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.views import LoginView

from greenkpi.demo.simulation import DEMO_PASSWORD, DEMO_USERS

SEES = {
    "admin": "everything (organisation admin, superuser)",
    "vision-lead": "the vision team (manager)",
    "nlp-viewer": "the nlp team (viewer)",
}


class DemoAwareLoginView(LoginView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if getattr(settings, "GREENKPI_DEMO", False):
            present = set(
                get_user_model()
                .objects.filter(username__in=DEMO_USERS, is_active=True)
                .values_list("username", flat=True)
            )
            context["demo_users"] = [(u, SEES.get(u, "")) for u in DEMO_USERS if u in present]
            context["demo_password"] = DEMO_PASSWORD
        return context
