"""The vendored plotly.js is the one the pinned plotly package ships (no CDN anywhere)."""

from __future__ import annotations

from pathlib import Path

from greenkpi.dashboard.management.commands.vendor_plotly import (
    package_plotly_js,
    vendored_plotly_js,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_vendored_plotly_js_matches_the_installed_plotly_package():
    assert vendored_plotly_js().read_bytes() == package_plotly_js().read_bytes(), (
        "plotly was upgraded: run `python manage.py vendor_plotly` and commit static/vendor/"
    )


def test_no_template_or_script_loads_anything_from_another_host():
    for path in [
        *ROOT.joinpath("templates").rglob("*.html"),
        *ROOT.joinpath("static", "dashboard").rglob("*"),
    ]:
        text = path.read_text()
        for marker in ("cdn.", "unpkg.com", "jsdelivr", "googleapis", 'src="http', 'href="http'):
            assert marker not in text, f"{path} loads {marker}"
