"""Copy plotly.js from the installed plotly package into static/vendor/ (run after upgrading it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import plotly
from django.conf import settings
from django.core.management.base import BaseCommand


def package_plotly_js() -> Path:
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def vendored_plotly_js() -> Path:
    return Path(settings.BASE_DIR) / "static" / "vendor" / "plotly.min.js"


class Command(BaseCommand):
    help = "Refresh static/vendor/plotly.min.js from the pinned plotly pip package."

    def handle(self, *args: Any, **options: Any) -> None:
        shutil.copyfile(package_plotly_js(), vendored_plotly_js())
        self.stdout.write(f"copied {package_plotly_js()} -> {vendored_plotly_js()}")
