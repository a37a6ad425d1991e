from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The simulated organisation of `make demo` and its commands (load_demo, demo_simulate); no
    models of its own: it writes through the other apps' services, so nothing imports it."""

    name = "greenkpi.demo"
    verbose_name = "Demo"
